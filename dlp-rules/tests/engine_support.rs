//! Shared by the engine_* tests: a small rule pack and body builders. (Also compiled alone as a
//! test crate with no tests.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dlp_rules::{BodyContext, Engine, Finding};

/// Small windows keep the streaming overlap short, so modest bodies cross many segment edges.
pub const TEST_PACK: &str = r#"
[[rule]]
id = "anthropic-api-key"
description = "Anthropic API key"
regex = '''sk-ant-api03-[A-Za-z0-9_\-]{93}AA'''
keywords = ["sk-ant-api03-"]
severity = "critical"
window = 128
examples = ["sk-ant-api03-ODjfcRNL2EDLbdDZ1c5jAU2rjTbrNLwMtshF6PwKluYIFdlKdMwj6uUvtaiJVfU7wicpHdEoziIbob-y6ShRfh2zucR-LAA"]
negatives = ["sk-ant-api03-short"]

[[rule]]
id = "github-classic-token"
description = "GitHub classic token"
regex = '''gh[pousr]_[A-Za-z0-9]{36}'''
keywords = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]
validator = "crc32-github"
severity = "high"
window = 64
examples = ["ghp_4Rb1yQ8wLx2ZkP0sTnV7cF3hJ9mD6eGa5uWi"]
negatives = ["ghp_0000000000000000000000000000000000000", "ghp_short"]

[[rule]]
id = "aws-access-key-id"
description = "AWS access key id"
regex = '''\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b'''
keywords = ["AKIA", "ASIA", "ABIA", "ACCA"]
entropy = 3.0
severity = "high"
window = 32
examples = ["AKIA2E3MKQ7ZBXW4RTYU"]
negatives = ["AKIAIOSFODNN7EXAMPLE"]

[[rule]]
id = "url-credentials"
description = "Password in a URL"
regex = '''[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:@/]{1,64}:([^\s@/]{6,128})@[A-Za-z0-9.\-]+'''
keywords = ["://"]
secret_group = 1
entropy = 2.5
severity = "high"
window = 200
examples = ["https://deploy:Zq8#vL2!pR7x@db.internal.example"]
negatives = ["https://user:${PASSWORD}@host", "https://example.com/path"]

[[rule]]
id = "private-key"
description = "PEM private key"
regex = '''-----BEGIN (?:(?:RSA|EC|OPENSSH|DSA|ENCRYPTED) )?PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{64,}'''
keywords = ["-----BEGIN"]
severity = "critical"
window = 256
examples = ["-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MmZLtC9NqmSfbVUq\nB3hY2lNsK7pG1CiBMiF5WyZk8vB3T9HmSxJvq2w=\n-----END RSA PRIVATE KEY-----"]
negatives = ["-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0Z3VS5JJcds3xfn\n-----END PUBLIC KEY-----"]

[[rule]]
id = "generic-password"
description = "Password assignment"
regex = '''(?i)(?:password|passwd)\s*[=:]\s*["']?([^\s"'&]{10,64})'''
keywords = ["password", "passwd"]
case_insensitive_keywords = true
secret_group = 1
entropy = 3.2
severity = "medium"
window = 48
examples = ["PASSWORD = 'xK9#mQ2$vL7@pR4'"]
negatives = ["password combination is weak", "password: ${DB_PASSWORD}"]
"#;

/// Secrets the tests embed, each with the rule that must find it.
pub const GH: &str = "ghp_4Rb1yQ8wLx2ZkP0sTnV7cF3hJ9mD6eGa5uWi";
pub const AWS: &str = "AKIA2E3MKQ7ZBXW4RTYU";
pub const ANT: &str = "sk-ant-api03-ODjfcRNL2EDLbdDZ1c5jAU2rjTbrNLwMtshF6PwKluYIFdlKdMwj6uUvtaiJVfU7wicpHdEoziIbob-y6ShRfh2zucR-LAA";

pub fn engine() -> Arc<Engine> {
    Arc::new(Engine::from_packs(&[("test", TEST_PACK)]).unwrap())
}

/// Realistic clean filler: an LLM request's prose and code, with JSON escapes.
pub fn prose(n: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "the",
        "function",
        "returns",
        "a",
        "value",
        "when",
        "called",
        "with",
        "config",
        "let",
        "mut",
        "self",
        "match",
        "error",
        "=>",
        "Ok(())",
        "\\n",
        "{",
        "}",
        "agent",
        "request",
        "token_count",
        "is",
        "fine",
        "\\\"",
        "src/main.rs",
        "https://docs.rs/regex",
        "uuid:",
        "550e8400-e29b-41d4-a716-446655440000",
        "sha256",
        "and",
    ];
    let mut s = String::with_capacity(n + 16);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while s.len() < n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
        s.push(' ');
    }
    s.truncate(n);
    s
}

/// `(rule, offset, length)` of each finding, sorted.
pub fn keys(f: &[Finding]) -> Vec<(String, u64, usize)> {
    let mut v: Vec<_> = f
        .iter()
        .map(|f| (f.rule_id.clone(), f.offset, f.length))
        .collect();
    v.sort();
    v
}

/// Feeds `chunks`, asserting after every step that nothing released overlaps a finding.
pub fn stream(
    engine: &Arc<Engine>,
    ctx: BodyContext,
    chunks: &[&[u8]],
    segment: Option<(usize, usize)>,
) -> (Vec<Finding>, u64) {
    let mut sc = engine.body_scanner(ctx).unwrap();
    if let Some((t, m)) = segment {
        sc.set_segment(t, m);
    }
    let mut findings = Vec::new();
    let mut released = Vec::new();
    for c in chunks {
        let p = sc.feed(c).unwrap();
        findings.extend(p.findings);
        released.push(p.releasable);
        assert!(sc.buffered() <= sc.buffer_bound());
    }
    let p = sc.finish().unwrap();
    findings.extend(p.findings);
    released.push(p.releasable);
    assert!(
        released.windows(2).all(|w| w[0] <= w[1]),
        "releasable went backwards"
    );
    if let Some(first) = findings.iter().map(|f| f.offset).min() {
        assert!(
            *released.last().unwrap() <= first,
            "released {} past a finding at {first}",
            released.last().unwrap()
        );
    }
    (findings, *released.last().unwrap())
}
