//! Every example and negative of every embedded pack, through the engine: raw, inside a JSON
//! request body, percent-encoded in a form, and base64-encoded at the three byte offsets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "engine_support.rs"]
mod support;

use std::sync::Arc;

use base64::Engine as _;
use dlp_rules::{BodyContext, Engine, Location, VALIDATORS};

fn json_body(s: &str) -> String {
    let content = serde_json::to_string(s).unwrap();
    format!("{{\"model\":\"claude-sonnet-4\",\"messages\":[{{\"role\":\"user\",\"content\":{content}}}],\"max_tokens\":1024}}")
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn found_by(engine: &Arc<Engine>, data: &[u8], form: bool, rule: &str) -> bool {
    let mut ctx = BodyContext::body();
    if form {
        ctx = ctx.with_content_type("application/x-www-form-urlencoded");
    }
    let mut sc = engine.body_scanner(ctx).unwrap();
    let mut f = sc.feed(data).unwrap().findings;
    f.extend(sc.finish().unwrap().findings);
    f.iter().any(|f| f.rule_id == rule)
}

/// Runs the full matrix over one engine; returns the failures.
fn check_all(engine: &Arc<Engine>) -> Vec<String> {
    let mut failures = Vec::new();
    for rule in engine.rules() {
        let id = rule.id.as_str();
        if rule.examples.is_empty() {
            failures.push(format!("{id}: no examples"));
        }
        if let Some(v) = &rule.validator {
            if !VALIDATORS.contains(&v.as_str()) {
                failures.push(format!(
                    "{id}: unknown validator {v:?} (built in: {VALIDATORS:?})"
                ));
            }
        }
        for ex in &rule.examples {
            let mut variants: Vec<(String, Vec<u8>, bool)> = vec![
                ("raw".into(), ex.as_bytes().to_vec(), false),
                ("json".into(), json_body(ex).into_bytes(), false),
                (
                    "percent".into(),
                    format!("a=1&q={}&b=2", percent(ex)).into_bytes(),
                    true,
                ),
            ];
            for k in 0..3 {
                let plain = format!("{}{ex}\n", " ".repeat(k));
                let enc = base64::engine::general_purpose::STANDARD.encode(plain);
                variants.push((
                    format!("base64@{k}"),
                    format!("{{\"data\":\"{enc}\"}}").into_bytes(),
                    false,
                ));
            }
            // Between binary bytes (an image, a protobuf): decoded payloads are scanned only in
            // their text segments, so the example must be found as the second of two.
            for k in 0..3 {
                let mut plain = b"\x89PNG\x00\x01\xfe".to_vec();
                plain.extend(std::iter::repeat_n(0x80u8, k));
                plain.extend_from_slice(b"IHDR lorem ipsum\x00\x9c\xff");
                plain.extend_from_slice(ex.as_bytes());
                plain.extend_from_slice(b"\x00\xf1\x02 dolor sit amet \x1b");
                let enc = base64::engine::general_purpose::STANDARD.encode(plain);
                variants.push((
                    format!("base64-binary@{k}"),
                    format!("{{\"data\":\"{enc}\"}}").into_bytes(),
                    false,
                ));
            }
            for (how, data, form) in variants {
                if !found_by(engine, &data, form, id) {
                    failures.push(format!("{id}: example not found ({how}): {ex:?}"));
                }
            }
        }
        for neg in &rule.negatives {
            for (how, data) in [
                ("raw", neg.as_bytes().to_vec()),
                ("json", json_body(neg).into_bytes()),
            ] {
                if found_by(engine, &data, false, id) {
                    failures.push(format!("{id}: negative matched ({how}): {neg:?}"));
                }
            }
        }
    }
    failures
}

#[test]
fn test_pack_matrix_passes() {
    let failures = check_all(&support::engine());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn embedded_packs_matrix_passes() {
    let packs = dlp_rules::embedded_packs();
    assert!(!packs.is_empty(), "no packs embedded from dlp-rules/rules/");
    let engine = Arc::new(Engine::builtin().unwrap());
    let failures = check_all(&engine);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn false_positive_corpus_is_clean() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/false_positives.txt");
    let text = std::fs::read_to_string(path).expect("rules/false_positives.txt");
    let engine = Engine::builtin().unwrap();
    let mut hits = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        for f in engine.scan_bytes(line.as_bytes(), false, Location::Body) {
            hits.push(format!("{} on {line:?}", f.rule_id));
        }
    }
    assert!(
        hits.is_empty(),
        "{} false positives:\n{}",
        hits.len(),
        hits.join("\n")
    );
}
