//! Tests for the ClientHello parser: real ClientHellos (rustls, openssl), every prefix,
//! reassembly, refusals, and proptests of the fuzz target's properties.

use super::*;
use proptest::prelude::*;
use std::sync::Arc;

/// The bytes a real rustls client sends first.
fn real_hello(server: &str, alpn: &[&[u8]], tls12_only: bool) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut config = builder
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(server.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

fn example() -> Vec<u8> {
    real_hello("example.com", &[b"h2", b"http/1.1"], false)
}

/// Re-frame the handshake message of a single-record hello into records of `sizes`
/// (the last size repeats until the message is used up); returns bytes and record count.
fn refragment(hello: &[u8], sizes: &[usize]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut rest = &hello[RECORD_HEADER_LEN..];
    let mut records = 0;
    while !rest.is_empty() {
        let n = sizes[records.min(sizes.len() - 1)].min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(chunk);
        rest = tail;
        records += 1;
    }
    (out, records)
}

fn assert_every_prefix_incomplete(bytes: &[u8]) {
    for n in 0..bytes.len() {
        match parse_client_hello(&bytes[..n]) {
            Err(ParseError::Incomplete { needed_hint }) => {
                if let Some(hint) = needed_hint {
                    assert!(hint > n && hint <= bytes.len(), "prefix {n}: hint {hint}");
                }
            }
            other => panic!("prefix of {n} bytes gave {other:?}"),
        }
    }
}

#[test]
fn real_rustls_hello_yields_sni_and_alpn() {
    let hello = example();
    let info = parse_client_hello(&hello).unwrap();
    assert_eq!(info.sni.as_deref(), Some("example.com"));
    assert_eq!(info.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(info.record_len, hello.len());
}

#[test]
fn tls12_only_hello_and_hello_without_alpn_or_sni() {
    let hello = real_hello("api.example.org", &[b"http/1.1"], true);
    let info = parse_client_hello(&hello).unwrap();
    assert_eq!(info.sni.as_deref(), Some("api.example.org"));
    assert_eq!(info.alpn, vec![b"http/1.1".to_vec()]);

    // rustls sends no SNI for IP addresses.
    let info = parse_client_hello(&real_hello("127.0.0.1", &[], false)).unwrap();
    assert_eq!(info.sni, None);
    assert!(info.alpn.is_empty());
}

/// The first bytes `openssl s_client` sends to a loopback listener.
fn openssl_hello() -> Vec<u8> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "example.com", "-alpn", "h2,http/1.1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is installed");
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while matches!(parse_client_hello(&buf), Err(ParseError::Incomplete { .. })) {
        let n = sock.read(&mut chunk).unwrap();
        assert!(n > 0, "openssl closed early");
        buf.extend_from_slice(&chunk[..n]);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    buf
}

#[test]
fn real_openssl_hello_yields_sni_and_alpn() {
    let hello = openssl_hello();
    let info = parse_client_hello(&hello).unwrap();
    assert_eq!(info.sni.as_deref(), Some("example.com"));
    assert_eq!(info.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(info.record_len, hello.len());
    assert_every_prefix_incomplete(&hello);
}

#[test]
fn every_strict_prefix_is_incomplete() {
    assert_every_prefix_incomplete(&example());
}

#[test]
fn bytes_after_the_hello_are_not_consumed() {
    let hello = example();
    let mut more = hello.clone();
    more.extend_from_slice(&[23, 3, 3, 0, 5, 1, 2, 3, 4, 5]);
    let info = parse_client_hello(&more).unwrap();
    assert_eq!(info.record_len, hello.len());
}

#[test]
fn hello_split_over_records_is_reassembled() {
    let hello = example();
    let want = parse_client_hello(&hello).unwrap();
    let cases: [&[usize]; 7] = [
        &[1],
        &[5],
        &[1, 2, 1000],
        &[3, 1000],
        &[100],
        &[hello.len() - 6, 1],
        &[2],
    ];
    let (mut refused, mut reassembled_many) = (false, false);
    for sizes in cases {
        let (split, records) = refragment(&hello, sizes);
        if records > MAX_HELLO_RECORDS {
            refused = true;
            assert_eq!(
                parse_client_hello(&split),
                Err(ParseError::Malformed(
                    "ClientHello split over too many records"
                ))
            );
            continue;
        }
        let info = parse_client_hello(&split).unwrap();
        assert_eq!((info.sni, info.alpn), (want.sni.clone(), want.alpn.clone()));
        assert_eq!(info.record_len, split.len());
        assert_every_prefix_incomplete(&split);
        reassembled_many |= records > 10;
    }
    assert!(
        refused && reassembled_many,
        "hello of {} bytes",
        hello.len()
    );
}

#[test]
fn other_protocols_are_refused_from_the_first_byte() {
    let inputs: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        &[0x80, 0x2e, 0x01, 0x00, 0x02], // SSLv2-framed ClientHello
        &[21, 3, 3, 0, 2, 2, 40],        // a TLS alert, not a handshake
        &[0x00, 0x00, 0x00],
    ];
    for input in inputs {
        assert_eq!(
            parse_client_hello(input),
            Err(ParseError::NotTls),
            "{input:?}"
        );
        assert_eq!(
            parse_client_hello(&input[..1]),
            Err(ParseError::NotTls),
            "{input:?}"
        );
    }
    assert_eq!(parse_client_hello(&[22, 2]), Err(ParseError::NotTls));
    assert_eq!(parse_client_hello(&[22, 3, 9]), Err(ParseError::NotTls));
}

#[test]
fn bounds_and_wrong_messages_are_refused_early() {
    // Over-long record: decided from the header alone.
    assert!(matches!(
        parse_client_hello(&[22, 3, 1, 0x40, 0x01]),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse_client_hello(&[22, 3, 1, 0, 0]),
        Err(ParseError::Malformed(_))
    ));
    // A ServerHello where a ClientHello belongs: decided from the sixth byte.
    assert!(matches!(
        parse_client_hello(&[22, 3, 3, 0, 80, 2]),
        Err(ParseError::Malformed(_))
    ));
    // Handshake length beyond MAX_HELLO_LEN.
    assert!(matches!(
        parse_client_hello(&[22, 3, 1, 0, 80, 1, 0x01, 0x00, 0x00]),
        Err(ParseError::Malformed(_))
    ));
    // Trailing bytes inside the hello's record.
    let hello = example();
    let mut padded = hello[..RECORD_HEADER_LEN].to_vec();
    let len = u16::from_be_bytes([hello[3], hello[4]]) + 1;
    padded[3..5].copy_from_slice(&len.to_be_bytes());
    padded.extend_from_slice(&hello[RECORD_HEADER_LEN..]);
    padded.push(0);
    assert!(matches!(
        parse_client_hello(&padded),
        Err(ParseError::Malformed(_))
    ));
}

use testkit::tls_hello::{client_hello_record as hello_with_extensions, sni_extension as sni_ext};

#[test]
fn ambiguous_or_bad_names_are_malformed() {
    let ok = hello_with_extensions(&sni_ext(&[(0, b"a.test")]));
    assert_eq!(
        parse_client_hello(&ok).unwrap().sni.as_deref(),
        Some("a.test")
    );

    let two_exts = [sni_ext(&[(0, b"a.test")]), sni_ext(&[(0, b"b.test")])].concat();
    let two_names = sni_ext(&[(0, b"a.test"), (0, b"b.test")]);
    let bad_chars = sni_ext(&[(0, b"a.test\0.evil")]);
    let empty = sni_ext(&[(0, b"")]);
    let empty_alpn = [0, 16, 0, 3, 0, 1, 0];
    let lying_len = [0, 16, 0, 9, 0, 1, 2, b'h', b'2'];
    for exts in [
        &two_exts[..],
        &two_names,
        &bad_chars,
        &empty,
        &empty_alpn,
        &lying_len,
    ] {
        let hello = hello_with_extensions(exts);
        assert!(
            matches!(parse_client_hello(&hello), Err(ParseError::Malformed(_))),
            "{exts:?}"
        );
    }
    // Unknown name types are skipped, not mistaken for a host name.
    let other_type = hello_with_extensions(&sni_ext(&[(7, b"x"), (0, b"c.test")]));
    assert_eq!(
        parse_client_hello(&other_type).unwrap().sni.as_deref(),
        Some("c.test")
    );
}

/// Whatever a prefix decides (other than `Incomplete`), the longer buffer decides too.
fn assert_prefix_stable(data: &[u8], cut: usize) {
    let cut = cut.min(data.len());
    match parse_client_hello(&data[..cut]) {
        Err(ParseError::Incomplete { .. }) => {}
        Ok(info) => {
            assert!(info.record_len <= cut);
            assert_eq!(parse_client_hello(data), Ok(info));
        }
        Err(e) => assert_eq!(parse_client_hello(data), Err(e)),
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096) {
        if let Ok(info) = parse_client_hello(&data) {
            prop_assert!(info.record_len <= data.len());
        }
        assert_prefix_stable(&data, cut);
    }

    #[test]
    fn tls_shaped_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048), len in 0u16..0x4100, cut in 0usize..2100) {
        let mut data = vec![22, 3, 1];
        data.extend_from_slice(&len.to_be_bytes());
        data.push(1);
        data.extend_from_slice(&tail);
        let _ = parse_client_hello(&data);
        assert_prefix_stable(&data, cut);
    }

    #[test]
    fn mutated_real_hellos_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut hello = example();
        for (at, byte) in flips {
            let i = at % hello.len();
            hello[i] = byte;
        }
        if let Ok(info) = parse_client_hello(&hello) {
            prop_assert!(info.record_len <= hello.len());
            prop_assert!(info.alpn.len() <= MAX_ALPN_PROTOCOLS);
        }
        assert_prefix_stable(&hello, cut % (hello.len() + 1));
    }
}

#[test]
fn an_encrypted_client_hello_extension_is_reported() {
    let plain = hello_with_extensions(&sni_ext(&[(0, b"cdn.test")]));
    assert!(!parse_client_hello(&plain).unwrap().ech);
    let ech = [
        sni_ext(&[(0, b"cdn.test")]),
        vec![0xfe, 0x0d, 0, 4, 0, 1, 2, 3],
    ]
    .concat();
    let info = parse_client_hello(&hello_with_extensions(&ech)).unwrap();
    assert!(info.ech);
    assert_eq!(info.sni.as_deref(), Some("cdn.test"));
}
