#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Leaves: names, key identifiers, serials, validity, and real chain validation by openssl.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use certs::{CertificateAuthority, LeafKey, DEFAULT_CA_VALIDITY, MIN_CA_VALIDITY};
use x509_parser::prelude::*;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn sans(x: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let san = x.subject_alternative_name().unwrap().unwrap().value;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &san.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push((*d).to_owned()),
            GeneralName::IPAddress(b) => ips.push(match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                n => panic!("bad IP SAN length {n}"),
            }),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips)
}

#[test]
fn dns_leaf_has_san_cn_eku_aki_and_short_backdated_validity() {
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let key = LeafKey::generate().unwrap();
    let leaf = ca.issue_leaf("API.Example.COM.", &key).unwrap();
    let x = parse(leaf.leaf_der());
    let cax = parse(ca.cert_der());

    assert_eq!(sans(&x), (vec!["api.example.com".to_owned()], vec![]));
    let cn = x
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, "api.example.com");
    let eku = x.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    assert!(!x.basic_constraints().unwrap().unwrap().value.ca);

    assert_eq!(x.issuer().as_raw(), cax.subject().as_raw());
    assert_eq!(common::aki(&x).unwrap(), common::ski(&cax).unwrap());
    assert_ne!(
        x.public_key().raw,
        cax.public_key().raw,
        "leaf key is not the CA key"
    );
    x.verify_signature(Some(cax.public_key())).unwrap();
    assert!(
        x.verify_signature(Some(x.public_key())).is_err(),
        "not self-signed"
    );

    let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
    let nb = x.validity().not_before.timestamp();
    let na = x.validity().not_after.timestamp();
    assert!((now - 3600 - nb).abs() < 60, "backdated one hour");
    assert!((na - now - 7 * 86400).abs() < 60, "valid 7 days");
    assert_eq!(leaf.chain().len(), 2);
    assert_eq!(leaf.chain()[1], *ca.cert_der());
}

#[test]
fn ip_literals_get_ip_sans() {
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let key = LeafKey::generate().unwrap();
    for (host, ip) in [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("10.1.2.3", "10.1.2.3"),
    ] {
        let leaf = ca.issue_leaf(host, &key).unwrap();
        let (dns, ips) = sans(&parse(leaf.leaf_der()));
        assert!(dns.is_empty(), "{host}: {dns:?}");
        assert_eq!(ips, vec![ip.parse::<IpAddr>().unwrap()], "{host}");
    }
}

#[test]
fn serials_are_random_positive_and_distinct() {
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let key = LeafKey::generate().unwrap();
    let mut seen = HashSet::new();
    for _ in 0..50 {
        let leaf = ca.issue_leaf("same.test", &key).unwrap();
        let x = parse(leaf.leaf_der());
        let serial = x.raw_serial().to_vec();
        assert_eq!(serial.len(), 16);
        assert_eq!(serial[0] & 0x80, 0, "positive");
        assert!(seen.insert(serial), "serial repeated");
    }
}

#[test]
fn leaf_never_outlives_the_ca() {
    let ca = CertificateAuthority::generate(MIN_CA_VALIDITY + Duration::from_secs(600)).unwrap();
    let leaf = ca
        .issue_leaf("x.test", &LeafKey::generate().unwrap())
        .unwrap();
    let x = parse(leaf.leaf_der());
    assert_eq!(
        x.validity().not_after.timestamp(),
        ca.not_after().unix_timestamp()
    );
}

#[test]
fn openssl_verifies_the_chain_for_names_and_ips() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let files = ca.write_pem(dir.path()).unwrap();
    let key = LeafKey::generate().unwrap();
    let cases: [(&str, &[&str]); 3] = [
        ("x.test", &["-verify_hostname", "x.test"]),
        ("127.0.0.1", &["-verify_ip", "127.0.0.1"]),
        ("::1", &["-verify_ip", "::1"]),
    ];
    for (host, args) in cases {
        let leaf = ca.issue_leaf(host, &key).unwrap();
        let path = dir.path().join("leaf.pem");
        std::fs::write(&path, leaf.leaf_pem()).unwrap();
        let mut all = vec!["-purpose", "sslserver", "-x509_strict"];
        all.extend_from_slice(args);
        let out = common::openssl_verify(&files.cert, &path, &all)
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(out.contains(": OK"), "{out}");
    }
    // Negative controls: another CA, another name.
    let leaf = ca.issue_leaf("x.test", &key).unwrap();
    let path = dir.path().join("leaf.pem");
    std::fs::write(&path, leaf.leaf_pem()).unwrap();
    assert!(common::openssl_verify(&files.cert, &path, &["-verify_hostname", "y.test"]).is_err());
    let other_dir = tempfile::tempdir().unwrap();
    let other = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let other_files = other.write_pem(other_dir.path()).unwrap();
    assert!(common::openssl_verify(&other_files.cert, &path, &[]).is_err());
}

#[test]
fn invalid_hosts_are_refused() {
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let key = LeafKey::generate().unwrap();
    for bad in ["", "*.example.com", "a b", "bücher.de"] {
        assert!(matches!(
            ca.issue_leaf(bad, &key),
            Err(certs::CertError::InvalidHost { .. })
        ));
    }
}
