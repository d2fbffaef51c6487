//! Leaf issuance: what a bumped CONNECT costs the first time a host is seen (cold) and after
//! (cached). Cold is one ECDSA P-256 signature plus a `ServerConfig` build; cached should be a
//! hash lookup, so a regression there (a lock, a rebuild per connection) shows at once.
//! Rows: `cold_sign_only` = `CertificateAuthority::issue_leaf` (one signature, DER encoding);
//! `cold_server_config` = `CertCache::issue_uncached` (that plus the rustls `ServerConfig`);
//! `cold_cache_miss` = `CertCache::get` for a new host (that plus moka's insert);
//! `cached_hit` = `CertCache::get` for a host already cached.
//! Run: cargo bench -p benches --bench certs -- --warm-up-time 1 --measurement-time 3
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use certs::{CertCache, CertificateAuthority, LeafKey};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate(Duration::from_secs(30 * 24 * 3600)).unwrap())
}

fn leaf_issuance(c: &mut Criterion) {
    let ca = ca();
    let key = LeafKey::generate().unwrap();
    let cache = CertCache::new(Arc::clone(&ca)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A distinct name per iteration: nothing below can be served from any cache.
    let n = AtomicU64::new(0);
    let fresh = || format!("h{}.bench.test", n.fetch_add(1, Ordering::Relaxed));

    let mut g = c.benchmark_group("leaf");
    g.bench_function("cold_sign_only", |b| {
        b.iter(|| black_box(ca.issue_leaf(&fresh(), &key).unwrap()))
    });
    g.bench_function("cold_server_config", |b| {
        b.iter(|| black_box(cache.issue_uncached(&fresh()).unwrap()))
    });
    // A miss through the cache: signing plus moka's insert (the path a new host really takes).
    // Bounded so the cache never evicts during the run.
    let miss_cache =
        CertCache::with_limits(Arc::clone(&ca), 10_000_000, Duration::from_secs(3600)).unwrap();
    g.bench_function("cold_cache_miss", |b| {
        b.iter(|| rt.block_on(async { black_box(miss_cache.get(&fresh()).await.unwrap()) }))
    });
    rt.block_on(async { cache.get("api.bench.test").await.unwrap() });
    g.bench_function("cached_hit", |b| {
        b.iter(|| rt.block_on(async { black_box(cache.get("api.bench.test").await.unwrap()) }))
    });
    g.finish();
}

criterion_group!(benches, leaf_issuance);
criterion_main!(benches);
