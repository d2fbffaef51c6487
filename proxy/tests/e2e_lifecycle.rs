//! A client connection's life after its CONNECT is answered: it stays counted (the connection
//! cap and the `egress_active_connections` gauge) until the tunnel closes, and a shutdown
//! (SIGTERM or SIGINT) drains it — what is in flight finishes, what is idle closes at once.
//! Real clients: `openssl s_client` holding tunnels open, curl streaming SSE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::ws::ws_connect;
use common::{Bench, Setup, HOST};
use futures_util::{SinkExt, StreamExt};
use testkit::SClient;
use tokio_tungstenite::tungstenite::Message;

/// A bumped (or, with `ca` = the upstream's CA, passthrough) tunnel held open by s_client,
/// after one keep-alive request has gone through it.
fn open_tunnel(b: &Bench, ca: &std::path::Path) -> Child {
    let port = b.upstream.port();
    let before = b.upstream.requests().len();
    let child = SClient::new(format!("{HOST}:{port}"))
        .proxy(b.proxy.listen_addr().to_string())
        .cafile(ca)
        .input(format!("GET /echo HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n"))
        .spawn()
        .unwrap();
    wait_for("the request through the tunnel", || {
        b.upstream.requests().len() > before
    });
    child
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The proxy's `/metrics` text.
fn metrics(b: &Bench) -> String {
    let admin = b.proxy.admin_addr().expect("admin listener");
    testkit::Curl::new(format!("http://{admin}/metrics"))
        .run()
        .unwrap()
        .text()
}

fn active_connections(b: &Bench) -> i64 {
    let text = metrics(b);
    text.lines()
        .find_map(|l| l.strip_prefix("egress_active_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gauge in {text}"))
}

fn exits_within(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// SIGTERM: the proxy exits on its own, well inside the drain timeout, and the client's
/// tunnel is closed by then.
fn stops_promptly_closing(b: &mut Bench, tunnel: &mut Child) {
    let start = Instant::now();
    let (status, graceful) = b.proxy.stop().unwrap();
    assert!(graceful && status.success(), "{status:?}");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        exits_within(tunnel, Duration::from_secs(5)),
        "tunnel left open"
    );
}

#[test]
fn open_tunnels_are_counted_until_they_close() {
    let b = Bench::start();
    let mut tunnels: Vec<Child> = (0..3).map(|_| open_tunnel(&b, &b.ca())).collect();
    // Each tunnel's CONNECT was answered long ago; the connections are still open.
    assert_eq!(active_connections(&b), 3);
    for t in &mut tunnels {
        t.kill().unwrap();
        t.wait().unwrap();
    }
    wait_for("the gauge to drop", || active_connections(&b) == 0);
}

/// The open connections of each shard (thread), from `/metrics`.
fn shard_connections(b: &Bench) -> Vec<i64> {
    metrics(b)
        .lines()
        .filter_map(|l| l.strip_prefix("egress_shard_connections{shard=\""))
        .map(|l| l.rsplit(' ').next().unwrap().trim().parse().unwrap())
        .collect()
}

#[test]
fn concurrent_connections_are_spread_over_the_shards_and_each_works() {
    let b = Bench::with(Setup {
        env: vec![("TOKIO_WORKER_THREADS".into(), "3".into())],
        ..Setup::default()
    });
    assert_eq!(shard_connections(&b), vec![0, 0, 0]);
    // Each tunnel is held open after its request went through, so the next one is assigned
    // while the earlier ones still count: one per shard, whichever thread accepted it.
    let mut tunnels: Vec<Child> = (0..3).map(|_| open_tunnel(&b, &b.ca())).collect();
    assert_eq!(shard_connections(&b), vec![1, 1, 1]);
    for t in &mut tunnels {
        t.kill().unwrap();
        t.wait().unwrap();
    }
    wait_for("every shard to be empty", || {
        shard_connections(&b) == vec![0, 0, 0]
    });
}

#[test]
fn sigterm_closes_an_idle_bumped_tunnel_at_once() {
    let mut b = Bench::start();
    let mut tunnel = open_tunnel(&b, &b.ca());
    // An idle keep-alive connection has nothing in flight: no wait for the drain timeout.
    stops_promptly_closing(&mut b, &mut tunnel);
}

#[test]
fn sigterm_closes_a_quiet_passthrough_tunnel() {
    let mut b = Bench::with(Setup {
        passthrough: true,
        ..Setup::default()
    });
    // Passthrough: s_client talks TLS with the upstream itself, through the spliced tunnel.
    let upstream_ca = b.test_ca.ca_pem_path().to_path_buf();
    let mut tunnel = open_tunnel(&b, &upstream_ca);
    stops_promptly_closing(&mut b, &mut tunnel);
    let tunnels: Vec<_> = b
        .audit("allow")
        .into_iter()
        .filter(|e| e["kind"] == "tunnel")
        .collect();
    assert_eq!(tunnels.len(), 1, "{:?}", b.proxy.audit_lines());
    assert!(
        tunnels[0]["bytes_down"].as_u64().unwrap() > 0,
        "{:?}",
        tunnels[0]
    );
}

#[test]
fn sigint_lets_a_streaming_response_finish() {
    let mut b = Bench::start();
    let sse = b.curl("/sse?n=6&interval_ms=300").http2();
    let stream = std::thread::spawn(move || sse.run_timed_lines().unwrap());
    wait_for("the stream to start", || {
        !b.upstream.requests_to("/sse").is_empty()
    });
    std::thread::sleep(Duration::from_millis(400));
    let (status, graceful) = b.proxy.stop_with("INT").unwrap();
    assert!(graceful && status.success(), "{status:?}");
    let timed = stream.join().unwrap();
    let events = timed
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("data:"))
        .count();
    assert_eq!(events, 6, "the drain cut the stream: {timed:?}");
}

/// An inspected WebSocket relay shows no request boundary: on SIGTERM it is closed once quiet
/// for DRAIN_IDLE, and the proxy exits well inside the drain timeout.
#[test]
fn sigterm_closes_a_quiet_websocket() {
    let mut b = Bench::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(async {
        let mut ws = ws_connect(&b).await;
        ws.send(Message::Text("hello".into())).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo, Message::Text("hello".into()));
        ws
    });
    let start = Instant::now();
    let (status, graceful) = b.proxy.stop().unwrap();
    assert!(graceful && status.success(), "{status:?}");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    rt.block_on(async {
        let end = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        assert!(
            matches!(end, Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))),
            "{end:?}"
        );
    });
}
