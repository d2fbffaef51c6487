//! DLP end to end: real curl through the proxy binary, one request encoding per test. Every
//! secret must be refused with a 403 that names the rule (never the value), be absent from what
//! the test upstream received, audited as a deny, and absent from everything the proxy printed.
//! Secrets are synthetic, generated at run time in each rule's shape (`common/secrets.rs`).
//! Modes (warn/off/exempt), large clean bodies and WebSocket messages: `e2e_dlp_modes.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use base64::Engine as _;
use common::secrets::*;
use common::{Bench, HOST};

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

/// A secret in a path segment (no query to strip): refused, and the audit line carries no
/// path at all rather than the secret; the same in warn mode, where the request goes ahead.
#[test]
fn secret_in_the_url_path_is_refused_and_never_audited() {
    for (seed, mode) in [(41, "block"), (42, "warn")] {
        let b = Bench::with(common::Setup {
            extra: format!("[dlp]\nmode = \"{mode}\"\n"),
            ..common::Setup::default()
        });
        let secret = github_pat(seed);
        let out = b.curl(&format!("/repos/{secret}/x")).run().unwrap();
        let decision = if mode == "block" {
            assert_refused(&b, &out, "github-pat", &secret, &[]);
            "deny"
        } else {
            assert_eq!(out.status, 404, "{}", out.text());
            "allow"
        };
        let event = b
            .proxy
            .wait_audit(WAIT, |e| {
                e["kind"] == "request" && e["decision"] == decision
            })
            .unwrap();
        assert_eq!(event["findings"][0]["rule_id"], "github-pat", "{event}");
        let audit = serde_json::to_string(&b.proxy.audit_lines()).unwrap();
        assert!(
            !audit.contains(&secret[4..]),
            "{mode}: the audit holds the secret: {audit}"
        );
        assert!(
            event["path"].as_str().unwrap().contains("redacted"),
            "{event}"
        );
    }
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
    for (seed, h2) in [(5, false), (6, true)] {
        let b = Bench::start();
        let secret = aws_key_id(seed);
        let curl = b.curl("/echo").header("X-Debug-Key", &secret);
        let out = if h2 { curl.http2() } else { curl.http1() }.run().unwrap();
        assert_eq!(out.http_version, if h2 { "2" } else { "1.1" });
        assert_refused(&b, &out, "aws-access-key-id", &secret, &[]);
        assert!(b.upstream.requests().is_empty());
    }
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

/// An upstream that answers before it has read the body (`/duplex` streams a line per body
/// frame): the response has started when the secret is found, so no 403 is possible. The
/// response is cut instead (HTTP/2: stream reset; HTTP/1: connection closed mid-body), the audit
/// line says deny, and no byte of the secret reaches the upstream.
#[test]
fn secret_found_after_the_response_started_cuts_the_response() {
    for (n, h2) in [(0u64, false), (1, true)] {
        let b = Bench::start();
        let secret = github_pat(20 + n);
        let mut body = clean_text(200_000, 20 + n);
        body.extend_from_slice(format!(" token={secret} ").as_bytes());
        body.extend(clean_text(1000, 30 + n));
        // Paced upload (~1 s): the upstream's answer is back long before the body is through.
        let curl = b
            .curl("/duplex")
            .method("POST")
            .header("Content-Type", "text/plain")
            .arg("--limit-rate")
            .arg("200k");
        let curl = if h2 { curl.http2() } else { curl.http1() };
        let out = curl.body(body).run().unwrap();
        assert_eq!(out.status, 200, "the head came first: {}", out.stderr);
        let text = out.text();
        assert_ne!(
            out.exit_code, 0,
            "curl saw a complete response: {text}\n{}",
            out.stderr
        );
        assert!(
            !text.contains("end\n"),
            "the response ran to its end: {text}"
        );
        assert!(b.upstream.wait_idle(WAIT));
        assert!(!b.upstream.received_bytes_contains(secret.as_bytes()));
        assert_no_piece_received(&b, &secret, 4);
        let event = b
            .proxy
            .wait_audit(WAIT, |e| {
                e["path"] == "/duplex" && e["decision"] == "deny" && e["status"] == 200
            })
            .unwrap_or_else(|| panic!("no deny audit (h2 {h2}): {:?}", b.proxy.audit_lines()));
        assert_eq!(event["findings"][0]["rule_id"], "github-pat", "{event}");
        assert!(
            event["reason"]
                .as_str()
                .unwrap()
                .contains("after the response had started"),
            "{event}"
        );
        assert!(!b.proxy.all_output().contains(&secret));
    }
}

/// A decompression bomb (64 MiB of zeros gzipped to ~64 KiB) passes the ratio limit: the body
/// is refused as unscannable, never passed on unscanned.
#[test]
fn a_gzip_bomb_is_refused_not_passed_unscanned() {
    let b = Bench::start();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 256 << 10, "{}", gz.len());
    let out = b
        .curl("/echo")
        .http1()
        .method("POST")
        .header("Content-Type", "application/octet-stream")
        .header("Content-Encoding", "gzip")
        .body(gz)
        .run()
        .unwrap();
    assert_eq!(out.status, 403, "{} {}", out.text(), out.stderr);
    assert!(
        out.text().contains("could not be scanned"),
        "{}",
        out.text()
    );
    let event = b
        .proxy
        .wait_audit(WAIT, |e| e["path"] == "/echo" && e["decision"] == "deny")
        .unwrap_or_else(|| panic!("{:?}", b.proxy.audit_lines()));
    assert!(
        event["reason"].as_str().unwrap().contains("ratio"),
        "{event}"
    );
    // The upstream got a cleared prefix at most, never the whole body.
    assert!(b.upstream.wait_idle(WAIT));
    for r in b.upstream.requests_to("/echo") {
        assert!(
            !r.body_complete,
            "the whole bomb arrived ({} bytes)",
            r.body_len
        );
    }
}

/// `Content-Encoding` on two lines (`identity`, then `gzip`): an upstream merges them into one
/// list and decodes the gzip, so the scanner must too (reading only the first line let the
/// gzip bytes pass as text). curl folds repeated headers, so openssl s_client writes the
/// request.
#[test]
fn a_coding_on_a_second_content_encoding_line_is_decoded_and_scanned() {
    let b = Bench::start();
    let secret = anthropic_key(40);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&clean_text(50_000, 40)).unwrap();
    gz.write_all(format!(" {{\"key\":\"{secret}\"}} ").as_bytes())
        .unwrap();
    let gz = gz.finish().unwrap();
    // Deflate really coded the token (it is not readable in the compressed bytes).
    assert!(!gz.windows(12).any(|w| w == &secret.as_bytes()[13..25]));
    let port = b.upstream.port();
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n\
         Content-Encoding: identity\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    request.extend_from_slice(&gz);
    let out = testkit::SClient::new(format!("{HOST}:{port}"))
        .proxy(b.proxy.listen_addr().to_string())
        .cafile(b.ca())
        .input(request)
        .ign_eof()
        .run()
        .unwrap();
    assert!(out.stdout.contains("HTTP/1.1 403"), "{}", out.stdout);
    assert!(out.stdout.contains("anthropic-api-key"), "{}", out.stdout);
    assert!(b.upstream.wait_idle(WAIT));
    assert!(!b.upstream.received_bytes_contains(&gz));
    assert!(!b.upstream.received_bytes_contains(secret.as_bytes()));
}

/// A method is any HTTP token, so a request line can carry a token in the method's place. Only
/// registered methods are forwarded; the refusal and the audit never spell the method out.
#[test]
fn a_secret_in_the_method_is_refused_and_never_audited() {
    let b = Bench::start();
    let secret = github_pat(41);
    let port = b.upstream.port();
    let request =
        format!("{secret} /echo HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n");
    let out = testkit::SClient::new(format!("{HOST}:{port}"))
        .proxy(b.proxy.listen_addr().to_string())
        .cafile(b.ca())
        .input(request.into_bytes())
        .ign_eof()
        .run()
        .unwrap();
    assert!(out.stdout.contains("HTTP/1.1 501"), "{}", out.stdout);
    assert!(b.upstream.wait_idle(WAIT));
    assert!(!b.upstream.received_bytes_contains(secret.as_bytes()));
    let audit = b.proxy.audit_lines();
    let line = audit
        .iter()
        .find(|e| e["status"] == 501)
        .expect("the refusal is audited");
    assert_eq!(line["method"], "[unlisted method]", "{line}");
    for e in &audit {
        assert!(!e.to_string().contains("ghp_"), "{e}");
    }
    // A registered method still goes through the same tunnel kind.
    let ok = b.curl("/echo").method("PROPFIND").run().unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
}
