//! DLP end to end: real curl (and a real WebSocket client) through the proxy binary. Every secret
//! must be refused with a 403 that names the rule (never the value), be absent from what the test
//! upstream received, audited as a deny, and absent from everything the proxy printed. Secrets
//! are synthetic, generated at run time in each rule's shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use common::{Bench, Setup, HOST};
use futures_util::{SinkExt, StreamExt};
use testkit::CurlOutput;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random(seed: u64, alphabet: &[u8], n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

fn anthropic_key(seed: u64) -> String {
    let alphabet = [ALNUM, b"_-"].concat();
    format!("sk-ant-api03-{}AA", random(seed, &alphabet, 93))
}

fn github_pat(seed: u64) -> String {
    format!("ghp_{}", random(seed, ALNUM, 36))
}

fn aws_key_id(seed: u64) -> String {
    format!(
        "AKIA{}",
        random(seed, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    )
}

fn slack_webhook(seed: u64) -> String {
    let id = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        random(seed, id, 9),
        random(seed + 1, id, 10),
        random(seed + 2, ALNUM, 24)
    )
}

/// Readable, rule-free filler: words from a small list, pseudo-randomly ordered.
fn clean_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "the", "agent", "reads", "a", "file", "and", "writes", "tests", "for", "every", "module",
        "today",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 12) as usize].as_bytes());
        out.push(if x.is_multiple_of(17) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Asserts that no 8-byte piece of `secret` from byte `from` on reached the upstream.
fn assert_no_piece_received(b: &Bench, secret: &str, from: usize) {
    let pieces: HashSet<&[u8]> = secret.as_bytes()[from..].windows(8).collect();
    let received = b.upstream.received_bytes();
    if let Some(w) = received.windows(8).find(|w| pieces.contains(w)) {
        panic!(
            "the upstream received a piece of the secret: {:?}",
            String::from_utf8_lossy(w)
        );
    }
}

/// The full contract of a refusal (see the module doc). `sent` are the encoded forms the
/// client put on the wire, which must not arrive either.
fn assert_refused(b: &Bench, out: &CurlOutput, rule: &str, secret: &str, sent: &[&[u8]]) {
    assert_eq!(out.status, 403, "body {} stderr {}", out.text(), out.stderr);
    let body = out.text();
    assert!(body.contains(rule), "403 body does not name {rule}: {body}");
    assert!(!body.contains(&secret[secret.len() / 3..]), "{body}");
    assert!(b.upstream.wait_idle(WAIT));
    assert!(!b.upstream.received_bytes_contains(secret.as_bytes()));
    assert_no_piece_received(b, secret, 4);
    for form in sent {
        assert!(
            !b.upstream.received_bytes_contains(form),
            "encoded form arrived"
        );
    }
    let event = b
        .proxy
        .wait_audit(WAIT, |e| {
            e["decision"] == "deny" && e["findings"][0]["rule_id"] == rule
        })
        .unwrap_or_else(|| panic!("no deny audit for {rule}: {:?}", b.proxy.audit_lines()));
    assert!(event["reason"].as_str().unwrap().contains(rule), "{event}");
    assert!(
        !b.proxy.all_output().contains(secret),
        "the proxy printed the secret"
    );
}

fn post(b: &Bench, path: &str, content_type: &str, body: Vec<u8>) -> CurlOutput {
    b.curl(path)
        .http1()
        .method("POST")
        .header("Content-Type", content_type)
        .body(body)
        .run()
        .unwrap()
}

#[test]
fn secret_in_a_percent_encoded_form_body_is_refused() {
    let b = Bench::start();
    let secret = anthropic_key(1);
    let encoded: String = secret.bytes().map(|c| format!("%{c:02X}")).collect();
    let body = format!("note=hello+world&key={encoded}&x=1");
    let out = post(
        &b,
        "/echo",
        "application/x-www-form-urlencoded",
        body.clone().into(),
    );
    assert_refused(
        &b,
        &out,
        "anthropic-api-key",
        &secret,
        &[encoded.as_bytes()],
    );
}

#[test]
fn secrets_in_json_bodies_with_escapes_are_refused() {
    let b = Bench::start();
    let hook = slack_webhook(2);
    let escaped = hook.replace('/', "\\/");
    let body = format!("{{\"text\":\"deploy done\",\"notify\":\"{escaped}\"}}");
    let out = post(&b, "/echo", "application/json", body.into());
    assert_refused(&b, &out, "slack-webhook-url", &hook, &[escaped.as_bytes()]);

    let key = anthropic_key(3);
    let escaped = key.replace('-', "\\u002d");
    let body = format!("{{\"messages\":[{{\"content\":\"use {escaped} please\"}}]}}");
    let out = post(&b, "/echo", "application/json", body.into());
    assert_refused(&b, &out, "anthropic-api-key", &key, &[escaped.as_bytes()]);
}

#[test]
fn secret_in_the_query_string_is_refused_before_anything_is_sent() {
    let b = Bench::start();
    let secret = github_pat(4);
    let out = b.curl(&format!("/echo?q=1&token={secret}")).run().unwrap();
    assert_refused(&b, &out, "github-pat", &secret, &[]);
    assert!(b.upstream.requests().is_empty());
}

#[test]
fn secret_in_a_custom_header_is_refused() {
    let b = Bench::start();
    let secret = aws_key_id(5);
    let out = b
        .curl("/echo")
        .header("X-Debug-Key", &secret)
        .run()
        .unwrap();
    assert_refused(&b, &out, "aws-access-key-id", &secret, &[]);
    assert!(b.upstream.requests().is_empty());
}

#[test]
fn secret_in_a_base64_json_field_is_refused_at_every_byte_offset() {
    let b = Bench::start();
    for (i, pad) in ["", "x", "xy"].iter().enumerate() {
        let secret = github_pat(10 + i as u64);
        let plain = format!("{pad}GITHUB_TOKEN={secret}\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        let body = format!("{{\"file\":\"env\",\"content\":\"{b64}\"}}");
        let out = post(&b, "/echo", "application/json", body.into());
        assert_refused(&b, &out, "github-pat", &secret, &[b64.as_bytes()]);
    }
}

#[test]
fn secret_in_a_gzip_body_is_refused_and_no_decodable_part_arrives() {
    let b = Bench::start();
    let secret = anthropic_key(6);
    let mut json = clean_text(200_000, 6);
    json.extend_from_slice(format!(" {{\"key\":\"{secret}\"}} ").as_bytes());
    json.extend(clean_text(50_000, 7));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).unwrap();
    let gz = gz.finish().unwrap();
    // Deflate really coded the token (it is not readable in the compressed bytes).
    assert!(!gz.windows(12).any(|w| w == &secret.as_bytes()[13..25]));
    let out = b
        .curl("/echo")
        .http1()
        .method("POST")
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.clone())
        .run()
        .unwrap();
    assert_refused(&b, &out, "anthropic-api-key", &secret, &[&gz]);
    // Whatever compressed prefix the upstream got must not decode to any part of the secret.
    for r in b.upstream.requests_to("/echo") {
        let mut decoded = Vec::new();
        let mut d = flate2::read::GzDecoder::new(r.body.as_slice());
        let _ = std::io::Read::read_to_end(&mut d, &mut decoded);
        assert!(!decoded
            .windows(8)
            .any(|w| secret.as_bytes()[4..].windows(8).any(|p| p == w)));
    }
}

/// The other request encodings the engine decodes: `deflate` (zlib) and `zstd` (the zstd CLI).
#[test]
fn secret_in_deflate_and_zstd_bodies_is_refused() {
    let b = Bench::start();
    for (i, encoding) in ["deflate", "zstd"].into_iter().enumerate() {
        let secret = aws_key_id(40 + i as u64);
        let mut plain = clean_text(100_000, 40);
        plain.extend_from_slice(format!(" aws_access_key_id = {secret} ").as_bytes());
        plain.extend(clean_text(10_000, 41));
        let compressed = if encoding == "deflate" {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(&plain).unwrap();
            z.finish().unwrap()
        } else {
            let mut child = std::process::Command::new("zstd")
                .args(["-q", "-c"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("the zstd CLI is needed for this test");
            let mut stdin = child.stdin.take().unwrap();
            let feed = std::thread::spawn(move || stdin.write_all(&plain).unwrap());
            let out = child.wait_with_output().unwrap();
            feed.join().unwrap();
            assert!(out.status.success());
            out.stdout
        };
        assert!(!compressed
            .windows(8)
            .any(|w| w == &secret.as_bytes()[4..12]));
        let out = b
            .curl("/echo")
            .http1()
            .method("POST")
            .header("Content-Type", "text/plain")
            .header("Content-Encoding", encoding)
            .body(compressed)
            .run()
            .unwrap();
        assert_refused(&b, &out, "aws-access-key-id", &secret, &[]);
    }
}

#[test]
fn secret_over_http2_is_refused() {
    let b = Bench::start();
    let secret = anthropic_key(7);
    let body = format!("{{\"x-api-key\":\"{secret}\"}}");
    let out = b
        .curl("/echo")
        .http2()
        .method("POST")
        .header("Content-Type", "application/json")
        .body(body)
        .run()
        .unwrap();
    assert_eq!(out.http_version, "2", "{}", out.stderr);
    assert_refused(&b, &out, "anthropic-api-key", &secret, &[]);
}

/// A chunked upload (`-T` with `Transfer-Encoding: chunked`) of 3 MiB of clean text followed by
/// a secret that straddles the 64 KiB boundary at 3 MiB: the scanner must stream (the clean
/// prefix may go ahead) and still hold back every byte of the secret.
#[test]
fn secret_split_across_upload_chunks_is_refused_and_never_partly_sent() {
    let b = Bench::start();
    let secret = anthropic_key(8);
    let boundary = 3 << 20;
    let mut body = clean_text(boundary - 50, 8);
    body.extend_from_slice(secret.as_bytes());
    body.extend(clean_text(100_000, 9));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.txt");
    std::fs::write(&file, &body).unwrap();
    let out = b
        .curl("/echo")
        .http1()
        .method("POST")
        .header("Content-Type", "text/plain")
        .header("Transfer-Encoding", "chunked")
        .upload_file(&file)
        .run()
        .unwrap();
    assert_refused(&b, &out, "anthropic-api-key", &secret, &[]);
    let received: u64 = b
        .upstream
        .requests_to("/echo")
        .iter()
        .map(|r| r.body_len)
        .sum();
    println!(
        "clean prefix forwarded before the block: {received} of {} bytes",
        boundary - 50
    );
    assert!(received < (boundary - 50) as u64 + 4);
}

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

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// CONNECT, TLS to the proxy's leaf, then a WebSocket handshake that offers permessage-deflate.
async fn ws_connect(b: &Bench) -> Ws {
    let port = b.upstream.port();
    let mut tcp = tokio::net::TcpStream::connect(b.proxy.listen_addr())
        .await
        .unwrap();
    let connect = format!("CONNECT {HOST}:{port} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n");
    tcp.write_all(connect.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    let tls = tokio_rustls::TlsConnector::from(common::h1_tls_client(&b.ca()))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://{HOST}:{port}/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
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
