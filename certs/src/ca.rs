//! The per-bottle certificate authority: creation, loading from disk, writing to disk.
//!
//! Each bottle gets its own short-lived CA so that a leaked CA key (it sits on the host, next
//! to the proxy) is only good for one bottle and only for a few weeks. pathlen 0 means the
//! CA can sign leaves but never another CA.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use zeroize::Zeroizing;

use crate::error::CertError;
use crate::serial::random_serial;

/// Default CA lifetime: long enough for a working session, short enough that a leaked key ages out.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Upper bound on a CA lifetime we are willing to mint (a "short-lived" CA should stay short).
pub const MAX_CA_VALIDITY: Duration = Duration::from_secs(397 * 24 * 60 * 60);
/// Lower bound: below this the CA would expire during an ordinary session.
pub const MIN_CA_VALIDITY: Duration = Duration::from_secs(60 * 60);
/// Certificates start this far in the past so a client whose clock lags a little still accepts them.
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// File name of the CA certificate written by [`CertificateAuthority::write_pem`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key written by [`CertificateAuthority::write_pem`] (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// A CA certificate or key PEM file larger than this is rejected instead of read.
pub const MAX_PEM_BYTES: u64 = 64 * 1024;

/// Paths written by [`CertificateAuthority::write_pem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `DIR/ca.pem`: give this to clients (`SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`, ...).
    pub cert: PathBuf,
    /// `DIR/ca.key`: created with mode 0600; only the proxy reads it.
    pub key: PathBuf,
}

/// A CA able to sign leaves. `Debug` never shows the key.
pub struct CertificateAuthority {
    /// The CA certificate exactly as clients trust it; served as the second chain element.
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key: KeyPair,
    /// rcgen's handle for the issuer (name, key id). For a loaded CA this is a re-signed copy
    /// whose DER differs from `cert_der`; it is only used to sign, never served.
    pub(crate) issuer: rcgen::Certificate,
    pub(crate) not_after: OffsetDateTime,
    subject: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CertificateAuthority {
    /// Mint a fresh ECDSA P-256 CA valid for `validity` (backdated by [`BACKDATE`]).
    ///
    /// The subject carries a random id so two bottles' CAs never share a name: clients that
    /// cache intermediates or key by subject cannot confuse them.
    pub fn generate(validity: Duration) -> Result<Self, CertError> {
        if !(MIN_CA_VALIDITY..=MAX_CA_VALIDITY).contains(&validity) {
            return Err(CertError::InvalidSetting(
                "CA validity must be between 1 hour and 397 days",
            ));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = now_whole_seconds();
        let id = random_serial();
        let id_hex: String = id.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let subject = format!("claude-bottle CA {id_hex}");

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subject.clone());
        dn.push(DnType::OrganizationName, "claude-bottle");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial().to_vec().into());
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;

        let issuer = params.self_signed(&key)?;
        Ok(Self {
            cert_der: issuer.der().clone(),
            cert_pem: issuer.pem(),
            not_after: issuer.params().not_after,
            key,
            issuer,
            subject,
        })
    }

    /// Load a CA from PEM files: the certificate, and its key as unencrypted PKCS#8
    /// (`-----BEGIN PRIVATE KEY-----`, as written by [`write_pem`](Self::write_pem)).
    ///
    /// Fails closed: the certificate must be a currently valid CA allowed to sign
    /// certificates, and the key must match it.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let cert_pem = read_bounded(cert_path)?;
        let cert_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or(CertError::Pem {
                path: cert_path.to_path_buf(),
                reason: "no CERTIFICATE block found",
            })?
            .map_err(|e| CertError::io(cert_path, e))?;

        let key_pem = Zeroizing::new(read_bounded(key_path)?);
        let key_der = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| CertError::io(key_path, e))?
            .ok_or(CertError::Pem {
                path: key_path.to_path_buf(),
                reason: "no private key block found",
            })?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key_der else {
            return Err(CertError::Pem {
                path: key_path.to_path_buf(),
                reason: "key must be unencrypted PKCS#8 (`openssl pkcs8 -topk8 -nocrypt` converts)",
            });
        };
        let key = KeyPair::try_from(&pkcs8).map_err(|_| CertError::Pem {
            path: key_path.to_path_buf(),
            reason: "unsupported key type (ECDSA P-256 expected)",
        })?;
        Self::from_parts(cert_der, &cert_pem, key)
    }

    fn from_parts(
        cert_der: CertificateDer<'static>,
        cert_pem: &str,
        key: KeyPair,
    ) -> Result<Self, CertError> {
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|_| CertError::InvalidCa("not a parseable X.509 certificate"))?;
        check_is_signing_ca(&x509)?;
        if x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(CertError::InvalidCa(
                "the key does not belong to the certificate",
            ));
        }
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        let now = OffsetDateTime::now_utc();
        if now >= not_after {
            return Err(CertError::CaExpired);
        }
        if now < not_before {
            return Err(CertError::InvalidCa("the certificate is not valid yet"));
        }
        let subject = x509.subject().to_string();

        let params = CertificateParams::from_ca_cert_der(&cert_der)?;
        let issuer = params.self_signed(&key)?;
        let ca = Self {
            cert_pem: cert_pem.to_owned(),
            key,
            issuer,
            not_after,
            subject,
            cert_der: cert_der.clone(),
        };
        ca.check_reproduces_issuer(&x509)?;
        Ok(ca)
    }

    /// rcgen re-encodes the CA's subject when it writes a leaf's issuer field. Clients match
    /// those bytes against the CA subject, so a CA whose name does not survive the round trip
    /// would issue leaves nobody can chain. Check once, with a probe leaf, at load time.
    fn check_reproduces_issuer(&self, ca: &X509Certificate<'_>) -> Result<(), CertError> {
        let mut probe = CertificateParams::new(vec!["probe.invalid".to_owned()])?;
        probe.use_authority_key_identifier_extension = true;
        let probe = probe.signed_by(&self.key, &self.issuer, &self.key)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(probe.der())
            .map_err(|_| CertError::InvalidCa("probe certificate did not parse"))?;
        if parsed.issuer().as_raw() != ca.subject().as_raw() {
            return Err(CertError::InvalidCa(
                "its subject name cannot be reproduced exactly in issued certificates",
            ));
        }
        if let (Some(ski), Some(aki)) = (subject_key_id(ca), authority_key_id(&parsed)) {
            if ski != aki {
                return Err(CertError::InvalidCa(
                    "its key identifier cannot be reproduced in issued certificates",
                ));
            }
        }
        Ok(())
    }

    /// Write `DIR/ca.pem` and `DIR/ca.key`. The key file is created with mode 0600 (never
    /// widened then narrowed), the directory, if created, with 0700. Existing files are not
    /// overwritten: replacing a CA that clients already trust must be a deliberate act.
    pub fn write_pem(&self, dir: &Path) -> Result<CaFiles, CertError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CertError::io(dir, e))?;
        let files = CaFiles {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        };
        for path in [&files.cert, &files.key] {
            if path.symlink_metadata().is_ok() {
                return Err(CertError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::AlreadyExists, "refusing to overwrite"),
                ));
            }
        }
        let key_pem = self.key_pem();
        write_new(&files.key, 0o600, key_pem.as_bytes())?;
        write_new(&files.cert, 0o644, self.cert_pem.as_bytes())?;
        Ok(files)
    }

    /// The CA private key as PKCS#8 PEM (what [`load`](Self::load) reads), zeroized on drop.
    ///
    /// Why: a caller that hands the key to another process (the launcher uploads it into the
    /// sidecar) can do so from memory, without a key file on disk that a crash or a signal
    /// could leave behind.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// The CA certificate as clients trust it (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate as clients trust it (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// End of the CA's validity; leaves never outlive it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The CA subject in RFC 4514 form (for logs and `check` output).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// Certificates carry whole seconds; keep our own record (`not_after`) equal to what is encoded.
pub(crate) fn now_whole_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn check_is_signing_ca(x509: &X509Certificate<'_>) -> Result<(), CertError> {
    let bc = x509
        .basic_constraints()
        .map_err(|_| CertError::InvalidCa("malformed basicConstraints"))?;
    if !bc.is_some_and(|bc| bc.value.ca) {
        return Err(CertError::InvalidCa("basicConstraints CA:TRUE is missing"));
    }
    let ku = x509
        .key_usage()
        .map_err(|_| CertError::InvalidCa("malformed keyUsage"))?;
    if let Some(ku) = ku {
        if !ku.value.key_cert_sign() {
            return Err(CertError::InvalidCa("keyUsage lacks keyCertSign"));
        }
    }
    Ok(())
}

pub(crate) fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
}

pub(crate) fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })
}

fn read_bounded(path: &Path) -> Result<String, CertError> {
    let file = std::fs::File::open(path).map_err(|e| CertError::io(path, e))?;
    let mut text = String::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| CertError::io(path, e))?;
    if text.len() as u64 > MAX_PEM_BYTES {
        return Err(CertError::Pem {
            path: path.to_path_buf(),
            reason: "file is larger than MAX_PEM_BYTES",
        });
    }
    Ok(text)
}

fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), CertError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| CertError::io(path, e))?;
    file.write_all(bytes).map_err(|e| CertError::io(path, e))?;
    file.sync_all().map_err(|e| CertError::io(path, e))
}
