//! The bounded cache of ready-to-use `ServerConfig`s, one per host.
//!
//! Handshakes are the proxy's main cost, so each host's `ServerConfig` (leaf signed, chain
//! and key loaded, ALPN set) is built once and shared as an `Arc` by every connection.
//! Concurrent misses for one host are merged by moka: one signing, every waiter gets the
//! same `Arc`. The cache is bounded by entry count; it is keyed by [`normalize_host`], and
//! the caller must only ask for names its policy allows, so an attacker cannot fill it with
//! invented names.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::ServerConfig;

use crate::ca::CertificateAuthority;
use crate::error::CertError;
use crate::leaf::{normalize_host, LeafKey, LEAF_VALIDITY};

/// Most `ServerConfig`s held at once (each is a few KiB: two certificates and small state).
pub const MAX_CACHED_CONFIGS: u64 = 10_000;
/// How long a built `ServerConfig` is reused. Well below [`LEAF_VALIDITY`] so a cached leaf
/// is always replaced days before it expires. (Leaves are also capped at the CA's end of
/// validity; when that passes the CA itself is dead, and no re-issue could help.)
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// TLS sessions remembered for resumption, shared by every host's `ServerConfig`.
///
/// rustls gives each `ServerConfig` its own store pre-allocated for 256 sessions (~30 KiB); at
/// [`MAX_CACHED_CONFIGS`] that would be ~300 MB. One shared store bounds it once, and is safe
/// because rustls only resumes a session under the SNI it was created for.
pub const SESSION_CACHE_ENTRIES: usize = 4096;
/// ALPN offered to clients of a bumped tunnel, in preference order.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A future yielding the `ServerConfig` for one host.
pub type ServerConfigFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<ServerConfig>, CertError>> + Send + 'a>>;

/// Something that hands out the TLS server configuration to present for a host.
///
/// Object-safe (boxed future) so the proxy can hold an `Arc<dyn ServerConfigSource>`.
/// Callers must only pass hosts their policy has already allowed.
pub trait ServerConfigSource: Send + Sync {
    /// The configuration presenting a certificate for `host`.
    fn server_config<'a>(&'a self, host: &'a str) -> ServerConfigFuture<'a>;
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Requests answered from the cache (including those that waited on another's signing).
    pub hits: u64,
    /// Leaves actually signed (one per merged miss).
    pub misses: u64,
    /// Entries currently held (moka's count; exact after `run_pending_tasks`).
    pub size: u64,
}

/// The per-bottle leaf cache. `Debug` shows counters only.
pub struct CertCache {
    ca: Arc<CertificateAuthority>,
    leaf_key: LeafKey,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    configs: Cache<String, Arc<ServerConfig>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CertCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertCache")
            .field("ca", &self.ca)
            .field("stats", &self.stats())
            .finish()
    }
}

impl CertCache {
    /// A cache with [`MAX_CACHED_CONFIGS`] and [`CACHE_TTL`], and a fresh leaf key.
    pub fn new(ca: Arc<CertificateAuthority>) -> Result<Self, CertError> {
        Self::with_limits(ca, MAX_CACHED_CONFIGS, CACHE_TTL)
    }

    /// A cache with explicit bounds. `ttl` must be non-zero and shorter than [`LEAF_VALIDITY`].
    pub fn with_limits(
        ca: Arc<CertificateAuthority>,
        max_capacity: u64,
        ttl: Duration,
    ) -> Result<Self, CertError> {
        if max_capacity == 0 {
            return Err(CertError::InvalidSetting(
                "cache capacity must be at least 1",
            ));
        }
        if ttl.is_zero() || ttl >= LEAF_VALIDITY {
            return Err(CertError::InvalidSetting(
                "cache TTL must be non-zero and shorter than the leaf validity",
            ));
        }
        Ok(Self {
            ca,
            leaf_key: LeafKey::generate()?,
            // Explicit provider: never depend on whatever process-wide default is installed.
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            configs: Cache::builder()
                .max_capacity(max_capacity)
                .time_to_live(ttl)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The `ServerConfig` for `host`, signing a leaf only if none is cached.
    pub async fn get(&self, host: &str) -> Result<Arc<ServerConfig>, CertError> {
        let key = normalize_host(host)?;
        let entry = self
            .configs
            .entry(key.clone())
            .or_try_insert_with(async {
                self.misses.fetch_add(1, Ordering::Relaxed);
                // Signing is one ECDSA operation (tens of µs): cheap enough to run inline
                // rather than hop to a blocking thread.
                self.build(&key)
            })
            .await
            .map_err(Arc::unwrap_or_clone)?;
        if !entry.is_fresh() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(entry.into_value())
    }

    /// Sign a leaf and build its `ServerConfig` without touching the cache (cold-path
    /// benchmarks; the proxy itself always goes through [`get`](Self::get)).
    pub fn issue_uncached(&self, host: &str) -> Result<Arc<ServerConfig>, CertError> {
        self.build(&normalize_host(host)?)
    }

    fn build(&self, host: &str) -> Result<Arc<ServerConfig>, CertError> {
        let leaf = self.ca.issue_leaf(host, &self.leaf_key)?;
        let certified = CertifiedKey::new(leaf.into_chain(), self.leaf_key.signing_key());
        certified.keys_match()?;
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        config.session_storage = Arc::clone(&self.sessions);
        tracing::debug!(host, "issued leaf certificate");
        Ok(Arc::new(config))
    }

    /// Hit/miss/size counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            size: self.configs.entry_count(),
        }
    }

    /// Apply pending evictions now (moka does it lazily); makes `stats().size` exact.
    pub async fn run_pending_tasks(&self) {
        self.configs.run_pending_tasks().await;
    }

    /// The CA signing the leaves.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }
}

impl ServerConfigSource for CertCache {
    fn server_config<'a>(&'a self, host: &'a str) -> ServerConfigFuture<'a> {
        Box::pin(self.get(host))
    }
}
