//! DLP end to end, beyond refusal: warn and off modes, per-host exemptions, a large clean body
//! passing byte-exact, and WebSocket messages (a real client; a secret closes with 1008).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::secrets::*;
use common::ws::{ws_connect, Ws};
use common::{Bench, Setup};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

fn warn_bench() -> Bench {
    Bench::with(Setup {
        extra: "[dlp]\nmode = \"warn\"\n".into(),
        ..Setup::default()
    })
}

/// The allow line of the request to `path`, which must carry `rule` as its first finding.
fn assert_warned(b: &Bench, path: &str, rule: &str, secret: &str) {
    let event = b
        .proxy
        .wait_audit(WAIT, |e| e["path"] == path && e["decision"] == "allow")
        .unwrap();
    assert_eq!(event["findings"][0]["rule_id"], rule, "{event}");
    assert!(!b.proxy.all_output().contains(secret));
}

#[test]
fn warn_mode_forwards_a_header_secret_and_audits_the_finding() {
    let b = warn_bench();
    let secret = github_pat(20);
    let out = b.curl("/echo").header("X-Token", &secret).run().unwrap();
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(secret.as_bytes()));
    assert_warned(&b, "/echo", "github-pat", &secret);
}

/// Warn mode: a body finding is forwarded and still appears in the allow line's findings.
#[test]
fn warn_mode_forwards_a_body_secret_and_audits_the_finding() {
    let b = warn_bench();
    let secret = github_pat(21);
    let out = post(&b, "/echo", "text/plain", format!("token {secret}").into());
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(secret.as_bytes()));
    assert_warned(&b, "/echo", "github-pat", &secret);
}

#[test]
fn exempt_hosts_forward_and_other_hosts_stay_scanned() {
    let b = Bench::with(Setup {
        extra: "[dlp]\nexempt_hosts = [\"alt.upstream.test:*\"]\n".into(),
        ..Setup::default()
    });
    let secret = github_pat(21);
    let alt = b.upstream.url("alt.upstream.test", "/echo");
    let out = testkit::Curl::new(alt)
        .proxy(b.proxy.proxy_url())
        .cacert(b.ca())
        .method("POST")
        .body(format!("token {secret}"))
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(secret.as_bytes()));
    b.upstream.clear();
    let out = post(&b, "/echo", "text/plain", format!("token {secret}").into());
    assert_refused(&b, &out, "github-pat", &secret, &[]);
}

/// Per-rule overrides in block mode: a `warn_rules` rule forwards and audits its finding, a
/// `disable_rules` rule never fires, and every other rule still blocks.
#[test]
fn per_rule_overrides_warn_disable_and_leave_the_rest_blocking() {
    let b = Bench::with(Setup {
        extra: "[dlp]\nmode = \"block\"\nwarn_rules = [\"github-pat\"]\n\
                disable_rules = [\"anthropic-api-key\"]\n"
            .into(),
        ..Setup::default()
    });
    let pat = github_pat(23);
    let out = post(&b, "/echo", "text/plain", format!("token {pat}").into());
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(pat.as_bytes()));
    assert_warned(&b, "/echo", "github-pat", &pat);

    let key = anthropic_key(23);
    let out = post(&b, "/status/201", "text/plain", format!("key {key}").into());
    assert_eq!(out.status, 201, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(key.as_bytes()));
    let event = b
        .proxy
        .wait_audit(WAIT, |e| {
            e["path"] == "/status/201" && e["decision"] == "allow"
        })
        .unwrap();
    assert!(
        event.get("findings").is_none(),
        "a disabled rule fired: {event}"
    );

    b.upstream.clear();
    let aws = aws_key_id(23);
    let out = post(&b, "/echo", "text/plain", format!("id {aws}").into());
    assert_refused(&b, &out, "aws-access-key-id", &aws, &[]);
}

#[test]
fn off_mode_forwards() {
    let b = Bench::with(Setup {
        extra: "[dlp]\nmode = \"off\"\n".into(),
        ..Setup::default()
    });
    let secret = anthropic_key(22);
    let out = post(&b, "/echo", "text/plain", secret.clone().into());
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(secret.as_bytes()));
}

#[test]
fn a_clean_20_mib_body_passes_byte_exact() {
    let b = Bench::start();
    let body = clean_text(20 << 20, 23);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clean.txt");
    std::fs::write(&file, &body).unwrap();
    let out = b
        .curl("/echo")
        .http1()
        .method("POST")
        .header("Content-Type", "text/plain")
        .upload_file(&file)
        .max_time(Duration::from_secs(300))
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{} {}", out.text(), out.stderr);
    assert_eq!(out.json().unwrap()["body_len"], 20 << 20);
    assert!(b.upstream.received_bytes().ends_with(&body), "body altered");
}

async fn expect_policy_close(ws: &mut Ws) {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
                assert!(frame.reason.contains("anthropic-api-key"), "{frame:?}");
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a 1008 close, got {other:?}"),
        }
    }
}

#[test]
fn secret_in_a_websocket_message_closes_1008_and_never_arrives() {
    let b = Bench::start();
    let secret = anthropic_key(30);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(&b).await;
        ws.send(Message::Text("hello".into())).await.unwrap();
        let echoed = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        assert_eq!(echoed.unwrap().unwrap(), Message::Text("hello".into()));
        ws.send(Message::Text(format!("{{\"key\":\"{secret}\"}}")))
            .await
            .unwrap();
        expect_policy_close(&mut ws).await;

        // The same secret split across two frames of one fragmented message.
        let mut ws = ws_connect(&b).await;
        let (head, tail) = secret.split_at(40);
        let first = Frame::message(
            format!("key {head}").into(),
            OpCode::Data(Data::Text),
            false,
        );
        let last = Frame::message(tail.into(), OpCode::Data(Data::Continue), true);
        ws.send(Message::Frame(first)).await.unwrap();
        ws.send(Message::Frame(last)).await.unwrap();
        expect_policy_close(&mut ws).await;
    });
    assert!(!b.upstream.received_bytes_contains(secret.as_bytes()));
    assert_no_piece_received(&b, &secret, 4);
    assert!(b.upstream.received_bytes_contains(b"hello"));
    for r in b.upstream.requests_to("/ws") {
        assert_eq!(
            r.header("sec-websocket-extensions"),
            None,
            "compression offered upstream"
        );
    }
    let denied = |e: &serde_json::Value| {
        e["decision"] == "deny"
            && e["findings"][0]["rule_id"] == "anthropic-api-key"
            && e["findings"][0]["location"]["kind"] == "web_socket_message"
    };
    b.proxy.wait_audit(WAIT, denied).expect("ws deny audit");
    assert!(!b.proxy.all_output().contains(&secret));
}

/// Warn mode keeps a large body flowing after a finding: the 8 MiB hold-back bound must not
/// turn a warning into a refusal.
#[test]
fn warn_mode_streams_a_large_body_after_a_finding() {
    let b = warn_bench();
    let secret = github_pat(33);
    let mut body = format!("token {secret}\n").into_bytes();
    body.extend(std::iter::repeat_n(b'x', 12 << 20));
    let len = body.len();
    let out = post(&b, "/upload", "application/octet-stream", body);
    assert_eq!(out.status, 200, "{}", out.text());
    assert_eq!(out.json().unwrap()["bytes"], len as u64);
}
