//! Synthetic secrets in real rules' shapes, generated at run time, and the refusal contract the
//! DLP end-to-end tests assert (`e2e_dlp.rs`, `e2e_dlp_modes.rs`).

use std::collections::HashSet;
use std::time::Duration;

use testkit::CurlOutput;

use super::Bench;

pub const WAIT: Duration = Duration::from_secs(10);
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub fn random(seed: u64, alphabet: &[u8], n: usize) -> String {
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

pub fn anthropic_key(seed: u64) -> String {
    let alphabet = [ALNUM, b"_-"].concat();
    format!("sk-ant-api03-{}AA", random(seed, &alphabet, 93))
}

pub fn github_pat(seed: u64) -> String {
    format!("ghp_{}", random(seed, ALNUM, 36))
}

pub fn aws_key_id(seed: u64) -> String {
    format!(
        "AKIA{}",
        random(seed, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    )
}

pub fn slack_webhook(seed: u64) -> String {
    let id = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        random(seed, id, 9),
        random(seed + 1, id, 10),
        random(seed + 2, ALNUM, 24)
    )
}

/// Readable, rule-free filler: words from a small list, pseudo-randomly ordered.
pub fn clean_text(len: usize, seed: u64) -> Vec<u8> {
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
pub fn assert_no_piece_received(b: &Bench, secret: &str, from: usize) {
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
pub fn assert_refused(b: &Bench, out: &CurlOutput, rule: &str, secret: &str, sent: &[&[u8]]) {
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

pub fn post(b: &Bench, path: &str, content_type: &str, body: Vec<u8>) -> CurlOutput {
    b.curl(path)
        .http1()
        .method("POST")
        .header("Content-Type", content_type)
        .body(body)
        .run()
        .unwrap()
}
