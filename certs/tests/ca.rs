#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CA: extensions, validity, uniqueness, files on disk, loading (ours and openssl's).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use certs::{CertError, CertificateAuthority, LeafKey, DEFAULT_CA_VALIDITY};
use x509_parser::oid_registry::{OID_EC_P256, OID_SIG_ECDSA_WITH_SHA256};
use x509_parser::prelude::*;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

#[test]
fn generated_ca_has_the_required_extensions_and_validity() {
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let x = parse(ca.cert_der());

    let bc = x.basic_constraints().unwrap().unwrap();
    assert!(bc.critical);
    assert!(bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));

    let ku = x.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.key_cert_sign());
    assert!(ku.value.crl_sign());
    assert!(!ku.value.digital_signature());

    assert!(common::ski(&x).is_some_and(|k| !k.is_empty()));
    assert_eq!(x.signature_algorithm.algorithm, OID_SIG_ECDSA_WITH_SHA256);
    let curve = x
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .unwrap()
        .as_oid()
        .unwrap();
    assert_eq!(curve, OID_EC_P256);
    assert_eq!(x.subject().as_raw(), x.issuer().as_raw());
    assert_eq!(x.raw_serial().len(), 16);

    let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
    let nb = x.validity().not_before.timestamp();
    let na = x.validity().not_after.timestamp();
    assert!((now - 3600 - nb).abs() < 60, "backdated one hour");
    assert!((na - now - 30 * 86400).abs() < 60, "valid 30 days");
    assert_eq!(ca.not_after().unix_timestamp(), na);

    let cn = x
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(cn.starts_with("claude-bottle CA "), "{cn}");
    let org = x
        .subject()
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(org, "claude-bottle");
}

#[test]
fn validity_is_configurable_within_bounds() {
    let ca = CertificateAuthority::generate(Duration::from_secs(2 * 86400)).unwrap();
    let x = parse(ca.cert_der());
    let span = x.validity().not_after.timestamp() - x.validity().not_before.timestamp();
    assert_eq!(span, 2 * 86400 + 3600);
    for bad in [
        Duration::ZERO,
        Duration::from_secs(60),
        Duration::from_secs(400 * 86400),
    ] {
        assert!(matches!(
            CertificateAuthority::generate(bad),
            Err(CertError::InvalidSetting(_))
        ));
    }
}

#[test]
fn two_cas_never_share_subject_or_serial() {
    let a = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let b = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    assert_ne!(a.subject(), b.subject());
    let (xa, xb) = (parse(a.cert_der()), parse(b.cert_der()));
    assert_ne!(xa.subject().as_raw(), xb.subject().as_raw());
    assert_ne!(xa.raw_serial(), xb.raw_serial());
}

#[test]
fn write_pem_creates_a_0600_key_and_a_cert_openssl_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bottle");
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let files = ca.write_pem(&out).unwrap();
    assert_eq!(files.cert, out.join("ca.pem"));
    assert_eq!(files.key, out.join("ca.key"));

    let key_mode = std::fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    let dir_mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode & 0o077, 0, "created directory is private");

    let key_text = std::fs::read_to_string(&files.key).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    let pkey = Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(&files.key)
        .output()
        .unwrap();
    assert!(pkey.status.success());
    assert!(String::from_utf8_lossy(&pkey.stdout).contains("prime256v1"));

    // The CA verifies against itself as a trust anchor.
    common::openssl_verify(&files.cert, &files.cert, &[]).unwrap();

    // Never overwrite a CA that clients may already trust.
    let other = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    assert!(matches!(other.write_pem(&out), Err(CertError::Io { .. })));
    assert_eq!(std::fs::read_to_string(&files.key).unwrap(), key_text);
}

#[test]
fn load_round_trips_and_leaves_chain_to_the_original_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let files = ca.write_pem(dir.path()).unwrap();
    let loaded = CertificateAuthority::load(&files.cert, &files.key).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.not_after(), ca.not_after());

    let leaf = loaded
        .issue_leaf("x.test", &LeafKey::generate().unwrap())
        .unwrap();
    assert_eq!(
        leaf.chain()[1],
        *ca.cert_der(),
        "served chain uses the original CA bytes"
    );
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, leaf.leaf_pem()).unwrap();
    common::openssl_verify(&files.cert, &leaf_path, &["-verify_hostname", "x.test"]).unwrap();
    let x = parse(leaf.leaf_der());
    assert_eq!(common::aki(&x), common::ski(&parse(ca.cert_der())));
}

/// The in-memory key is the key `write_pem` writes, and with the certificate loads as this CA.
#[test]
fn key_pem_is_the_written_key_and_loads_with_the_cert() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let key = ca.key_pem();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let files = ca.write_pem(&dir.path().join("written")).unwrap();
    assert_eq!(std::fs::read_to_string(&files.key).unwrap(), key.as_str());
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, ca.cert_pem()).unwrap();
    std::fs::write(&key_path, key.as_bytes()).unwrap();
    let loaded = CertificateAuthority::load(&cert_path, &key_path).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
}

fn openssl_ca(dir: &std::path::Path, extra: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("o.pem"), dir.join("o.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/C=DE/O=Example Corp/CN=Operator CA"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert, key)
}

#[test]
fn loads_a_ca_made_by_openssl_and_issues_leaves_openssl_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_ca(
        dir.path(),
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let ca = CertificateAuthority::load(&cert, &key).unwrap();
    let leaf = ca
        .issue_leaf("git.internal", &LeafKey::generate().unwrap())
        .unwrap();
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, leaf.leaf_pem()).unwrap();
    common::openssl_verify(
        &cert,
        &leaf_path,
        &["-purpose", "sslserver", "-verify_hostname", "git.internal"],
    )
    .unwrap();
    // And the check can fail: wrong name.
    assert!(
        common::openssl_verify(&cert, &leaf_path, &["-verify_hostname", "other.internal"]).is_err()
    );
}

#[test]
fn load_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let a = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let b = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let fa = a.write_pem(&dir.path().join("a")).unwrap();
    let fb = b.write_pem(&dir.path().join("b")).unwrap();

    // Key of another CA.
    assert!(matches!(
        CertificateAuthority::load(&fa.cert, &fb.key),
        Err(CertError::InvalidCa(_))
    ));

    // A leaf is not a CA (its key is unknown here, but the CA check comes first).
    let leaf = a
        .issue_leaf("x.test", &LeafKey::generate().unwrap())
        .unwrap();
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, leaf.leaf_pem()).unwrap();
    assert!(matches!(
        CertificateAuthority::load(&leaf_path, &fa.key),
        Err(CertError::InvalidCa(_))
    ));

    // openssl self-signed cert without CA:TRUE.
    let (cert, key) = openssl_ca(
        &dir.path().join("."),
        &["-addext", "basicConstraints=critical,CA:FALSE"],
    );
    assert!(matches!(
        CertificateAuthority::load(&cert, &key),
        Err(CertError::InvalidCa(_))
    ));

    // SEC1 ("EC PRIVATE KEY") is refused with a hint, not guessed at.
    let sec1 = dir.path().join("sec1.key");
    let conv = Command::new("openssl")
        .args(["ec", "-in"])
        .arg(&fa.key)
        .arg("-out")
        .arg(&sec1)
        .output()
        .unwrap();
    assert!(conv.status.success());
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    match CertificateAuthority::load(&fa.cert, &sec1) {
        Err(CertError::Pem { reason, .. }) => assert!(reason.contains("PKCS#8"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Missing and oversized files.
    assert!(matches!(
        CertificateAuthority::load(&dir.path().join("nope.pem"), &fa.key),
        Err(CertError::Io { .. })
    ));
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; 70 * 1024]).unwrap();
    assert!(matches!(
        CertificateAuthority::load(&big, &fa.key),
        Err(CertError::Pem { .. })
    ));
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        CertificateAuthority::load(&empty, &fa.key),
        Err(CertError::Pem { .. })
    ));
}

#[test]
fn debug_output_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap();
    let files = ca.write_pem(dir.path()).unwrap();
    let key_pem = std::fs::read_to_string(&files.key).unwrap();
    let body: String = key_pem.lines().nth(1).unwrap().chars().take(24).collect();
    let shown = format!("{ca:?} {:?}", LeafKey::generate().unwrap());
    assert!(shown.contains("redacted"));
    assert!(!shown.contains(&body));
    // rcgen's own KeyPair Debug would print the DER bytes; ours must not contain any byte list.
    assert!(!shown.contains("serialized_der"));
}
