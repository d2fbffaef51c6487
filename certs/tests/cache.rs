#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ServerConfig cache: miss merging, bounds, and real rustls handshakes against it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use certs::{
    CacheStats, CertCache, CertError, CertificateAuthority, ServerConfigSource,
    DEFAULT_CA_VALIDITY, LEAF_VALIDITY,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

fn cache() -> Arc<CertCache> {
    let ca = Arc::new(CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap());
    Arc::new(CertCache::new(ca).unwrap())
}

fn client_config(ca: &CertificateAuthority, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_misses_sign_once_and_share_one_config() {
    let cache = cache();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (cache, barrier) = (Arc::clone(&cache), Arc::clone(&barrier));
        tasks.spawn(async move {
            barrier.wait().await;
            cache.get("x.test").await.unwrap()
        });
    }
    let configs: Vec<_> = tasks.join_all().await;
    assert!(configs.iter().all(|c| Arc::ptr_eq(c, &configs[0])));
    cache.run_pending_tasks().await;
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 49,
            misses: 1,
            size: 1
        }
    );

    // Equivalent spellings share the entry; another name is a new miss.
    let again = cache.get("X.TEST.").await.unwrap();
    assert!(Arc::ptr_eq(&again, &configs[0]));
    cache.get("y.test").await.unwrap();
    cache.run_pending_tasks().await;
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 50,
            misses: 2,
            size: 2
        }
    );
}

#[tokio::test]
async fn capacity_bound_is_respected() {
    let ca = Arc::new(CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap());
    let cache = CertCache::with_limits(ca, 8, Duration::from_secs(3600)).unwrap();
    for i in 0..40 {
        cache.get(&format!("h{i}.test")).await.unwrap();
    }
    cache.run_pending_tasks().await;
    let stats = cache.stats();
    assert_eq!(stats.misses, 40);
    assert!(stats.size <= 8, "{stats:?}");
    assert!(stats.size > 0, "{stats:?}");
}

#[test]
fn limits_are_validated() {
    let ca = Arc::new(CertificateAuthority::generate(DEFAULT_CA_VALIDITY).unwrap());
    for (cap, ttl) in [
        (0, Duration::from_secs(60)),
        (10, Duration::ZERO),
        (10, LEAF_VALIDITY),
    ] {
        assert!(matches!(
            CertCache::with_limits(Arc::clone(&ca), cap, ttl),
            Err(CertError::InvalidSetting(_))
        ));
    }
}

#[tokio::test]
async fn failures_are_not_cached_or_counted() {
    let cache = cache();
    assert!(matches!(
        cache.get("*.test").await,
        Err(CertError::InvalidHost { .. })
    ));
    assert_eq!(cache.stats(), CacheStats::default());
}

#[tokio::test]
async fn handshake_with_cached_config_negotiates_h2_and_serves_leaf_plus_ca() {
    let cache = cache();
    let source: Arc<dyn ServerConfigSource> = cache.clone();
    let server_cfg = source.server_config("x.test").await.unwrap();
    assert_eq!(
        server_cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    for (alpn, want) in [
        (&[b"h2".as_slice(), b"http/1.1"][..], b"h2".as_slice()),
        (&[b"http/1.1".as_slice()][..], b"http/1.1".as_slice()),
    ] {
        let mut client = ClientConnection::new(
            client_config(cache.ca(), alpn),
            ServerName::try_from("x.test").unwrap(),
        )
        .unwrap();
        let mut server = ServerConnection::new(Arc::clone(&server_cfg)).unwrap();
        common::handshake(&mut client, &mut server).unwrap();
        assert_eq!(client.alpn_protocol(), Some(want));
        assert_eq!(server.server_name(), Some("x.test"));
        let chain = client.peer_certificates().unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], *cache.ca().cert_der());
    }

    // The check can fail: the client expects another name.
    let mut client = ClientConnection::new(
        client_config(cache.ca(), &[b"h2"]),
        ServerName::try_from("other.test").unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(server_cfg).unwrap();
    let err = common::handshake(&mut client, &mut server).unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn ip_host_handshake_validates_against_ip_san() {
    let cache = cache();
    let cfg = cache.get("127.0.0.1").await.unwrap();
    let mut client = ClientConnection::new(
        client_config(cache.ca(), &[b"http/1.1"]),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(cfg).unwrap();
    common::handshake(&mut client, &mut server).unwrap();
}

#[tokio::test]
async fn uncached_issue_does_not_touch_the_cache() {
    let cache = cache();
    let a = cache.issue_uncached("x.test").unwrap();
    let b = cache.get("x.test").await.unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert_eq!(cache.stats().misses, 1);
}

#[tokio::test]
async fn sessions_resume_through_one_shared_bounded_store() {
    let cache = cache();
    let x = cache.get("x.test").await.unwrap();
    let y = cache.get("y.test").await.unwrap();
    assert!(std::ptr::addr_eq(
        Arc::as_ptr(&x.session_storage),
        Arc::as_ptr(&y.session_storage)
    ));

    let client_cfg = client_config(cache.ca(), &[b"h2"]);
    let connect = |name: &str, server_cfg: &Arc<rustls::ServerConfig>| {
        let mut client = ClientConnection::new(
            Arc::clone(&client_cfg),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        let mut server = ServerConnection::new(Arc::clone(server_cfg)).unwrap();
        common::handshake(&mut client, &mut server).unwrap();
        client.handshake_kind().unwrap()
    };
    assert_eq!(connect("x.test", &x), rustls::HandshakeKind::Full);
    assert_eq!(connect("x.test", &x), rustls::HandshakeKind::Resumed);
    assert_eq!(connect("y.test", &y), rustls::HandshakeKind::Full);
}
