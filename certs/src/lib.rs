//! Per-bottle CA and leaf issuance.
//!
//! - [`CertificateAuthority`]: mint (`generate`), persist (`write_pem`) or `load` the
//!   bottle's short-lived ECDSA P-256 CA.
//! - [`CertCache`]: bounded, miss-merging cache of `Arc<rustls::ServerConfig>` per host,
//!   exposed to the proxy through the object-safe [`ServerConfigSource`] trait.
//! - [`CertificateAuthority::issue_leaf`]: the uncached signing step (benchmarks, tests).

mod ca;
mod cache;
mod error;
mod leaf;
mod serial;

pub use ca::{
    CaFiles, CertificateAuthority, BACKDATE, CA_CERT_FILE, CA_KEY_FILE, DEFAULT_CA_VALIDITY,
    MAX_CA_VALIDITY, MAX_PEM_BYTES, MIN_CA_VALIDITY,
};
pub use cache::{
    CacheStats, CertCache, ServerConfigFuture, ServerConfigSource, ALPN_PROTOCOLS, CACHE_TTL,
    MAX_CACHED_CONFIGS, SESSION_CACHE_ENTRIES,
};
pub use error::CertError;
pub use leaf::{normalize_host, IssuedLeaf, LeafKey, LEAF_VALIDITY, MAX_HOST_LEN};
pub use serial::SERIAL_LEN;
