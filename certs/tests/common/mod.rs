//! Helpers shared by the integration tests: real `openssl`, real rustls handshakes.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use rustls::{ClientConnection, ServerConnection};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

/// Run `openssl verify -CAfile ca leaf` plus extra args; Ok(stdout) iff it exits 0.
pub fn openssl_verify(ca: &Path, leaf: &Path, extra: &[&str]) -> Result<String, String> {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .args(extra)
        .arg(leaf)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

pub fn ski<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
}

pub fn aki<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
}

/// Drive a client and a server connection in memory until both finish the handshake or
/// one side fails.
pub fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let mut slice = &to_server[..];
        while !slice.is_empty() {
            server.read_tls(&mut slice).unwrap();
            server.process_new_packets()?;
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        let mut slice = &to_client[..];
        while !slice.is_empty() {
            client.read_tls(&mut slice).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            // Deliver what the server sends right after (TLS 1.3 session tickets).
            let mut rest = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut rest).unwrap();
            }
            let mut slice = &rest[..];
            while !slice.is_empty() {
                client.read_tls(&mut slice).unwrap();
                client.process_new_packets()?;
            }
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}
