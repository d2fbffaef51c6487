//! The bumped tunnel with real clients: curl (h1 and h2), python requests, git, openssl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Bench, Setup, HOST};
use testkit::{git_clone, python_requests, PyRequest};

#[test]
fn curl_h1_and_h2_reach_an_allowlisted_host() {
    let b = Bench::start();
    let h1 = b.curl("/echo?q=1").http1().run().unwrap();
    assert_eq!(h1.status, 200, "{}", h1.stderr);
    assert_eq!(h1.http_version, "1.1");
    let h2 = b.curl("/echo").http2().run().unwrap();
    assert_eq!(h2.status, 200, "{}", h2.stderr);
    assert_eq!(h2.http_version, "2");
    assert_eq!(h2.json().unwrap()["path"], "/echo");
    let seen = b.upstream.requests();
    assert_eq!(seen.len(), 2);
    // ALPN on each side independently: this upstream offers h2, so both clients' requests
    // reach it over h2, whatever they spoke to the proxy.
    assert_eq!(seen[0].version, "HTTP/2.0");
    assert_eq!(seen[1].version, "HTTP/2.0");
    let allowed: Vec<_> = b
        .audit("allow")
        .into_iter()
        .filter(|e| e["kind"] == "request")
        .collect();
    assert_eq!(allowed.len(), 2, "{:?}", b.proxy.audit_lines());
    assert_eq!(allowed[0]["host"], HOST);
    assert_eq!(
        allowed[0]["path"], "/echo?q=",
        "query values are not audited"
    );
    // Every field the audit promises, once.
    let e = &allowed[0];
    assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    assert!(e["conn"].as_u64().is_some(), "{e}");
    assert!(
        e["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{e}"
    );
    assert_eq!(e["method"], "GET", "{e}");
    assert_eq!(e["port"], b.upstream.port(), "{e}");
    assert_eq!(e["decision"], "allow", "{e}");
    assert_eq!(e["reason"], "allowed", "{e}");
    assert_eq!(e["status"], 200, "{e}");
    assert_eq!(e["bytes_up"], 0, "{e}");
    assert_eq!(e["bytes_down"], h1.body.len(), "{e}");
    assert!(e["duration_ms"].as_u64().is_some(), "{e}");
}

/// An explicitly allowlisted IP literal: the client sends no SNI (none is allowed for an IP),
/// the leaf carries an IP SAN, and the explicit entry exempts the address from the
/// private-address guard on that port.
#[test]
fn an_allowlisted_ip_literal_is_bumped_without_sni() {
    let b = Bench::with(Setup {
        allow: vec!["127.0.0.1:@PORT@".into()],
        ..Setup::default()
    });
    let url = format!("https://127.0.0.1:{}/echo", b.upstream.port());
    let out = testkit::Curl::new(url)
        .proxy(b.proxy.proxy_url())
        .cacert(b.ca())
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{} {}", out.text(), out.stderr);
    assert_eq!(b.upstream.requests().len(), 1);
}

#[test]
fn h1_and_h2_clients_to_h1_only_upstream() {
    let b = Bench::with(Setup {
        alpn_h1_only: true,
        ..Setup::default()
    });
    let out = b.curl("/echo").http2().run().unwrap();
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.http_version, "2");
    let out = b.curl("/echo?q=1").http1().run().unwrap();
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.http_version, "1.1");
    let seen = b.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].version, "HTTP/1.1");
    assert_eq!(seen[1].version, "HTTP/1.1");
}

#[test]
fn python_requests_through_the_proxy() {
    let b = Bench::start();
    let r = python_requests(
        &PyRequest::get(b.url("/echo"))
            .proxy(b.proxy.proxy_url())
            .ca(b.ca()),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(b.upstream.requests().len(), 1);
}

#[test]
fn git_clone_over_https_through_the_proxy() {
    let b = Bench::with(Setup {
        git: true,
        ..Setup::default()
    });
    let dest = tempfile::tempdir().unwrap();
    let out = git_clone(
        &b.url("/git/repo.git"),
        &dest.path().join("repo"),
        Some(&b.proxy.proxy_url()),
        Some(&b.ca()),
        &[],
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dest.path().join("repo/README.md").exists() || dest.path().join("repo/README").exists()
    );
}

#[test]
fn sse_events_arrive_one_by_one() {
    let b = Bench::start();
    let timed = b
        .curl("/sse?n=4&interval_ms=500")
        .http1()
        .run_timed_lines()
        .unwrap();
    let events: Vec<_> = timed
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("data:"))
        .collect();
    assert_eq!(events.len(), 4, "{:?}", timed);
    let first = events[0].0;
    let last = events[3].0;
    assert!(
        last - first >= Duration::from_millis(1200),
        "events were buffered: {first:?} .. {last:?}"
    );
}

#[test]
fn sse_events_arrive_one_by_one_over_h2() {
    let b = Bench::start();
    let timed = b
        .curl("/sse?n=3&interval_ms=500")
        .http2()
        .run_timed_lines()
        .unwrap();
    let events: Vec<_> = timed
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("data:"))
        .collect();
    assert_eq!(events.len(), 3, "{:?}", timed);
    assert!(events[2].0 - events[0].0 >= Duration::from_millis(800));
}

#[test]
fn upstream_tls_failure_is_a_502_that_says_why() {
    let b = Bench::with(Setup {
        trust_upstream: false,
        ..Setup::default()
    });
    let out = b.curl("/echo").run().unwrap();
    assert_eq!(out.status, 502);
    let body = out.text();
    assert!(
        body.contains("TLS") && body.to_lowercase().contains("certificate"),
        "{body}\n{}",
        b.proxy.stderr()
    );
    assert!(b.upstream.requests().is_empty());
}

#[test]
fn passthrough_hosts_are_not_intercepted() {
    let b = Bench::with(Setup {
        passthrough: true,
        ..Setup::default()
    });
    // The upstream's own certificate reaches the client: it verifies with the upstream CA…
    let direct_ca = testkit::Curl::new(b.url("/echo"))
        .proxy(b.proxy.proxy_url())
        .cacert(b.test_ca.ca_pem_path())
        .run()
        .unwrap();
    assert_eq!(direct_ca.status, 200, "{}", direct_ca.stderr);
    // …and not with the proxy's CA.
    let bumped = b.curl("/echo").run().unwrap();
    assert_ne!(bumped.status, 200);
}

#[test]
fn metrics_and_healthz() {
    let b = Bench::start();
    assert_eq!(b.curl("/echo").run().unwrap().status, 200);
    let admin = b.proxy.admin_addr().expect("admin listener");
    let health = testkit::Curl::new(format!("http://{admin}/healthz"))
        .run()
        .unwrap();
    assert_eq!(health.status, 200);
    let metrics = testkit::Curl::new(format!("http://{admin}/metrics"))
        .run()
        .unwrap()
        .text();
    assert!(
        metrics.contains("egress_decisions_total{decision=\"allow\",reason=\"connect\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("egress_cert_cache_misses_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("egress_active_connections"), "{metrics}");
    // Denied CONNECTs (attacker-chosen names) never reach the leaf cache: it holds the one
    // allowed host whatever else was asked for.
    for i in 0..5 {
        let target = format!("random-{i}.example.net:443");
        let (resp, _) =
            testkit::raw_connect(b.proxy.listen_addr(), &target, Duration::from_secs(10)).unwrap();
        assert_eq!(resp.status, 403);
    }
    let metrics = testkit::Curl::new(format!("http://{admin}/metrics"))
        .run()
        .unwrap()
        .text();
    assert!(metrics.contains("egress_cert_cache_size 1"), "{metrics}");
    assert!(
        metrics.contains("egress_cert_cache_misses_total 1"),
        "{metrics}"
    );
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let mut b = Bench::start();
    assert_eq!(b.curl("/echo").run().unwrap().status, 200);
    let (status, graceful) = b.proxy.stop().unwrap();
    assert!(graceful && status.success(), "{status:?}");
}

/// A hand-made ClientHello naming `sni`, plus `extra` extensions.
fn client_hello(sni: &str, extra: &[u8]) -> Vec<u8> {
    use testkit::tls_hello::{client_hello_record, sni_extension};
    client_hello_record(&[sni_extension(&[(0, sni.as_bytes())]), extra.to_vec()].concat())
}

/// A passthrough tunnel is decided by the outer SNI; with an encrypted ClientHello the server a
/// CDN picks is named inside it, so such a hello is refused (and nothing is dialled).
#[test]
fn passthrough_refuses_an_encrypted_client_hello() {
    use std::io::{Read, Write};
    let b = Bench::with(Setup {
        passthrough: true,
        ..Setup::default()
    });
    let target = format!("{HOST}:{}", b.upstream.port());
    let ech = [0xfe, 0x0d, 0, 4, 0, 1, 2, 3];
    let (resp, mut tunnel) =
        testkit::raw_connect(b.proxy.listen_addr(), &target, Duration::from_secs(10)).unwrap();
    assert_eq!(resp.status, 200);
    tunnel.write_all(&client_hello(HOST, &ech)).unwrap();
    tunnel
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = tunnel.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the tunnel answered: {rest:?}");
    let event = b
        .proxy
        .wait_audit(Duration::from_secs(5), |e| e["kind"] == "tunnel")
        .unwrap();
    assert_eq!(event["decision"], "deny", "{event}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("encrypted ClientHello"),
        "{event}"
    );
    // The same hello without ECH is spliced: the upstream's TLS stack answers it (an alert or
    // a ServerHello record).
    let (_, mut tunnel) =
        testkit::raw_connect(b.proxy.listen_addr(), &target, Duration::from_secs(10)).unwrap();
    tunnel.write_all(&client_hello(HOST, &[])).unwrap();
    tunnel
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut first = [0u8; 1];
    tunnel.read_exact(&mut first).unwrap();
    assert!(
        first[0] == 21 || first[0] == 22,
        "not a TLS record: {first:?}"
    );
}
