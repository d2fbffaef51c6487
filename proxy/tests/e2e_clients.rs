//! `[clients]` end to end: the real binary on loopback, real curl from two source addresses
//! (127.0.0.1 and, with `--interface`, 127.0.0.2). A refused peer gets nothing from either
//! listener — no proxied request, no route, so no token reaches the upstream — and leaves one
//! deny line in the audit; an admitted peer is served as before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Bench, Setup};
use testkit::Curl;

const TOKEN: &str = "btl-clients-Qm4Zr8_wT2/kP6=Lx9";
const WAIT: Duration = Duration::from_secs(10);

/// The proxy with one credential route and this `[clients]` table.
fn bench(clients: &str) -> Bench {
    Bench::with(Setup {
        top: "routes_listen = \"127.0.0.1:0\"\n".into(),
        extra: format!(
            "[clients]\n{clients}\n\n[[routes]]\npath = \"/up/\"\nupstream = \"https://upstream.test:@PORT@\"\ntoken_env = \"BOTTLE_CLIENTS_TOKEN\"\n"
        ),
        env: vec![("BOTTLE_CLIENTS_TOKEN".into(), TOKEN.into())],
        ..Setup::default()
    })
}

/// A request through the forward proxy from `source`.
fn via_proxy(b: &Bench, source: &str) -> testkit::CurlOutput {
    b.curl("/status/204")
        .arg("--interface")
        .arg(source)
        .max_time(WAIT)
        .run()
        .unwrap()
}

/// A request to the credential route from `source`.
fn via_route(b: &Bench, source: &str) -> testkit::CurlOutput {
    Curl::new(format!("{}/up/status/204", b.proxy.routes_url().unwrap()))
        .arg("--interface")
        .arg(source)
        .max_time(WAIT)
        .run()
        .unwrap()
}

/// Asserts curl got no HTTP answer at all (closed connection), not an error page.
fn assert_closed(out: &testkit::CurlOutput, what: &str) {
    assert_eq!(
        out.status,
        0,
        "{what}: answered {}: {}",
        out.status,
        out.text()
    );
    assert_ne!(out.exit_code, 0, "{what}: curl succeeded");
}

/// The deny lines for `peer`'s refused connections, waited for until there are `n`.
fn refusals(b: &Bench, peer: &str, n: usize) -> Vec<serde_json::Value> {
    let matches = |e: &serde_json::Value| {
        e["decision"] == "deny"
            && e["status"] == 0
            && e["client"]
                .as_str()
                .is_some_and(|c| c.starts_with(&format!("{peer}:")))
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found: Vec<_> = b
            .proxy
            .audit_lines()
            .into_iter()
            .filter(|e| matches(e))
            .collect();
        if found.len() >= n || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_peer_outside_allow_is_closed_on_both_listeners_and_one_inside_is_served() {
    let b = bench("allow = [\"127.0.0.2/32\"]");
    assert_closed(&via_proxy(&b, "127.0.0.1"), "proxy listener");
    assert_closed(&via_route(&b, "127.0.0.1"), "routes listener");
    assert!(b.upstream.wait_idle(WAIT));
    assert!(
        b.upstream.requests().is_empty(),
        "a refused peer's request reached the upstream"
    );
    assert!(!b.upstream.received_bytes_contains(TOKEN.as_bytes()));

    let lines = refusals(&b, "127.0.0.1", 2);
    assert_eq!(lines.len(), 2, "{:?}", b.proxy.audit_lines());
    let ports: Vec<u64> = lines.iter().map(|e| e["port"].as_u64().unwrap()).collect();
    let listen = u64::from(b.proxy.listen_addr().port());
    let routes = u64::from(b.proxy.routes_addr().unwrap().port());
    assert_eq!(ports, [listen, routes], "one line per listener: {lines:?}");
    for e in &lines {
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.contains("client 127.0.0.1")
                && reason.contains("clients.allow")
                && reason.contains("\"127.0.0.1/32\""),
            "{reason}"
        );
        assert_eq!(e["host"], "127.0.0.1");
    }

    // Positive control: the listed address is served on both listeners, the route with its token.
    let ok = via_proxy(&b, "127.0.0.2");
    assert_eq!(ok.status, 204, "{}", ok.stderr);
    let ok = via_route(&b, "127.0.0.2");
    assert_eq!(ok.status, 204, "{}", ok.stderr);
    let reqs = b.upstream.requests_to("/status/204");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(refusals(&b, "127.0.0.2", 0).is_empty());
}

#[test]
fn deny_wins_over_allow() {
    let b = bench("allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.1/32\"]");
    assert_closed(&via_route(&b, "127.0.0.1"), "denied peer");
    assert!(!b.upstream.received_bytes_contains(TOKEN.as_bytes()));
    let lines = refusals(&b, "127.0.0.1", 1);
    assert_eq!(lines.len(), 1, "{:?}", b.proxy.audit_lines());
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(reason.contains("clients.deny[0]"), "{reason}");
    let ok = via_route(&b, "127.0.0.2");
    assert_eq!(ok.status, 204, "{}", ok.stderr);
    assert!(b.upstream.received_bytes_contains(TOKEN.as_bytes()));
}

#[test]
fn without_clients_any_peer_is_served() {
    let b = bench("");
    for source in ["127.0.0.1", "127.0.0.2"] {
        let ok = via_route(&b, source);
        assert_eq!(ok.status, 204, "{source}: {}", ok.stderr);
    }
}
