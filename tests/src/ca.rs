//! A throwaway test PKI, deliberately separate from the proxy's CA: upstream
//! servers present leaves from this CA, and the proxy must be told to trust it
//! (`[upstream] extra_roots`), exactly like an operator-supplied private root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use tempfile::TempDir;

/// Test certificate authority (ECDSA P-256) whose files live in a temp dir
/// that is removed when the value is dropped.
pub struct TestCa {
    dir: TempDir,
    cert: Certificate,
    key: KeyPair,
    ca_pem: PathBuf,
    counter: AtomicU64,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Creates a fresh CA with a unique subject and writes `ca.pem`.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("testkit-ca-").tempdir()?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("testkit upstream CA {}", unique_suffix()),
        );
        dn.push(DnType::OrganizationName, "claude-bottle testkit");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let (not_before, not_after) = validity();
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.self_signed(&key)?;
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).context("writing test CA pem")?;
        Ok(Self {
            dir,
            cert,
            key,
            ca_pem,
            counter: AtomicU64::new(0),
        })
    }

    /// PEM file of the CA certificate (give it to curl `--cacert`, `GIT_SSL_CAINFO`,
    /// python `verify=`, or the proxy's `extra_roots`).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem
    }

    /// PEM text of the CA certificate.
    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// DER of the CA certificate, for building rustls root stores in tests.
    pub fn ca_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Issues a server leaf for DNS names and/or IP literals (IP SANs) and
    /// returns `(cert_path, key_path)` (PEM; the cert file holds leaf then CA).
    pub fn issue(&self, names: &[&str]) -> Result<(PathBuf, PathBuf)> {
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans)?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("testkit leaf"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let (not_before, not_after) = validity();
        params.not_before = not_before;
        params.not_after = not_after;
        let leaf = params.signed_by(&leaf_key, &self.cert, &self.key)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let cert_path = self.dir.path().join(format!("leaf-{n}.pem"));
        let key_path = self.dir.path().join(format!("leaf-{n}.key"));
        std::fs::write(&cert_path, format!("{}{}", leaf.pem(), self.cert.pem()))?;
        std::fs::write(&key_path, leaf_key.serialize_pem())?;
        Ok((cert_path, key_path))
    }

    /// A rustls client config trusting only this CA, with the given ALPN list
    /// (for Rust-side clients such as the WebSocket test client).
    pub fn client_config(&self, alpn: &[&str]) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls_pki_types::CertificateDer::from(self.ca_der()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(7),
    )
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}
