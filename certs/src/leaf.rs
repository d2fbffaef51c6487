//! Leaf certificates for the hosts a bumped tunnel impersonates.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::sign::SigningKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ca::{now_whole_seconds, CertificateAuthority, BACKDATE};
use crate::error::CertError;
use crate::serial::random_serial;

/// How long a leaf is valid (capped by the CA's own end of validity).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Longest DNS name we put in a certificate (RFC 1035 limit, without the trailing dot).
pub const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// The key pair every leaf of one cache certifies.
///
/// One key per process rather than per leaf: a fresh key would buy no isolation, because
/// every leaf key lives in the same process memory as the CA key that can mint any leaf
/// anyway; while one key lets rustls parse it once (the `SigningKey` is shared by every
/// `ServerConfig`) and keeps a cold issuance to a single ECDSA signature. It is never the
/// CA's key: a leaf signed with the CA's own key pair is a known MITM-proxy mistake.
pub struct LeafKey {
    key: KeyPair,
    signing: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeafKey(<redacted>)")
    }
}

impl LeafKey {
    /// A fresh ECDSA P-256 key.
    pub fn generate() -> Result<Self, CertError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(der)?;
        Ok(Self { key, signing })
    }

    /// The key as rustls uses it for handshakes.
    pub fn signing_key(&self) -> Arc<dyn SigningKey> {
        Arc::clone(&self.signing)
    }
}

/// A freshly signed leaf and the chain to serve with it.
pub struct IssuedLeaf {
    cert: rcgen::Certificate,
    chain: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for IssuedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLeaf")
            .field("chain_len", &self.chain.len())
            .finish()
    }
}

impl IssuedLeaf {
    /// The leaf certificate (DER).
    pub fn leaf_der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }

    /// The leaf certificate (PEM).
    pub fn leaf_pem(&self) -> String {
        self.cert.pem()
    }

    /// `[leaf, CA]`, the CA exactly as clients trust it.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Consume into the chain to hand to rustls.
    pub fn into_chain(self) -> Vec<CertificateDer<'static>> {
        self.chain
    }
}

impl CertificateAuthority {
    /// Sign a leaf for `host` (a DNS name or an IP literal) certifying `key`.
    ///
    /// `host` is normalized with [`normalize_host`] first. The caller is responsible for
    /// only asking for hosts its policy allows: this function signs whatever it is given.
    pub fn issue_leaf(&self, host: &str, key: &LeafKey) -> Result<IssuedLeaf, CertError> {
        let host = normalize_host(host)?;
        let now = now_whole_seconds();
        if now >= self.not_after {
            return Err(CertError::CaExpired);
        }
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into()?),
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial().to_vec().into());
        params.not_before = now - BACKDATE;
        params.not_after = std::cmp::min(now + LEAF_VALIDITY, self.not_after);

        let cert = params.signed_by(&key.key, &self.issuer, &self.key)?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        Ok(IssuedLeaf { cert, chain })
    }
}

/// The canonical form of a host, used both in the certificate and as the cache key, so
/// that `Example.COM.` and `example.com` share one entry and `0:0::1` and `::1` another.
///
/// Lowercases, drops one trailing dot, unwraps `[v6]`, and prints IP literals canonically.
/// Only ASCII letters, digits, `-` and `_` are accepted in DNS labels: internationalized
/// names must arrive already in punycode (the policy layer converts them).
pub fn normalize_host(host: &str) -> Result<String, CertError> {
    let invalid = |reason| CertError::InvalidHost {
        host: host.chars().take(MAX_HOST_LEN + 2).collect(),
        reason,
    };
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if let Some(inner) = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Ok(ip.to_string()),
            Err(_) => Err(invalid(
                "brackets hold something other than an IPv6 address",
            )),
        };
    }
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if trimmed.is_empty() {
        return Err(invalid("empty name"));
    }
    if trimmed.len() > MAX_HOST_LEN {
        return Err(invalid("name longer than 253 bytes"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(invalid("empty label or label longer than 63 bytes"));
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(invalid(
                "only ASCII letters, digits, '-' and '_' are allowed",
            ));
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_equivalent_spellings_to_one_key() {
        assert_eq!(normalize_host("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_host("[0:0::1]").unwrap(), "::1");
        assert_eq!(normalize_host("::1").unwrap(), "::1");
        assert_eq!(normalize_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(normalize_host("a_b.example").unwrap(), "a_b.example");
    }

    #[test]
    fn rejects_names_that_cannot_be_certified() {
        for bad in [
            "",
            ".",
            "a..b",
            "*.example.com",
            "exa mple.com",
            "bücher.de",
            "[example.com]",
            "host:443",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_host(&"a".repeat(64)).is_err());
        let long = ["a"; 128].join(".");
        assert_eq!(long.len(), 255);
        assert!(normalize_host(&long).is_err());
    }
}
