//! One error type for the crate.
//!
//! `Clone` because the cache shares one issuance result between every caller that was
//! waiting on the same name (moka hands the error back as `Arc<CertError>`); so foreign
//! errors that are not `Clone` are held behind an `Arc` or flattened to their message.
//! No variant ever carries key material.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a CA could not be created, loaded or written, or a leaf could not be issued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertError {
    /// Reading or writing a CA file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A PEM file did not hold what was expected.
    #[error("{path}: {reason}")]
    Pem {
        /// The file involved.
        path: PathBuf,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The certificate is not usable as our CA (not a CA, expired, key mismatch, ...).
    #[error("unusable CA certificate: {0}")]
    InvalidCa(&'static str),
    /// The CA's validity has ended; no leaf may be issued under it.
    #[error("the CA certificate has expired; create a new one with `egress-proxy ca init`")]
    CaExpired,
    /// The host cannot be put into a certificate (empty, too long, bad characters).
    #[error("cannot issue a certificate for host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given (hosts are not secret; they appear in audit lines too).
        host: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A configuration value was out of range.
    #[error("invalid certificate setting: {0}")]
    InvalidSetting(&'static str),
    /// Certificate generation or signing failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Sign(String),
    /// rustls rejected the key or chain.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        // rcgen::Error is not Clone; its message is all a caller can act on anyway.
        CertError::Sign(e.to_string())
    }
}

impl CertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CertError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
