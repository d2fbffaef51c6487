//! Streaming: split-invariance at every offset and under random chunkings, the no-leak
//! releasable guarantee, and bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "engine_support.rs"]
mod support;

use base64::Engine as _;
use dlp_rules::{BodyContext, Location};
use proptest::prelude::*;
use support::*;

fn body_with_secrets() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("k={AWS} trailing"));
    format!(
        "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}, {{\"content\":\"token {GH} end {}\"}}, {{\"content\":\"{}key%3D{}&x https:\\/\\/bob:Zq8#vL2!pR7x@db.local {} blob {b64} {}\"}}]}}",
        prose(900, 1), prose(700, 2), prose(500, 3), AWS.replace('A', "%41"), prose(300, 4), prose(800, 5)
    )
}

#[test]
fn one_shot_finds_every_planted_secret() {
    let e = engine();
    let body = body_with_secrets();
    let found = e.scan_bytes(body.as_bytes(), false, Location::Body);
    let rules: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
    assert!(rules.contains(&"github-classic-token"), "{found:?}");
    assert!(rules.contains(&"url-credentials"), "{found:?}");
    assert_eq!(
        rules.iter().filter(|r| **r == "aws-access-key-id").count(),
        2,
        "{found:?}"
    );
    for f in &found {
        assert!(f.offset as usize + f.length <= body.len());
    }
}

#[test]
fn two_chunks_split_at_every_offset() {
    let e = engine();
    let body = body_with_secrets();
    let bytes = body.as_bytes();
    let expected = keys(&e.scan_bytes(bytes, false, Location::Body));
    assert!(expected.len() >= 4);
    for p in 0..=bytes.len() {
        let (a, b) = bytes.split_at(p);
        // Tiny segments: every feed is a scan round, so the overlap logic is what is exercised.
        let (found, _) = stream(&e, BodyContext::body(), &[a, b], Some((1, 1 << 20)));
        assert_eq!(keys(&found), expected, "split at {p}");
    }
}

#[test]
fn releasable_holds_back_before_the_secret_and_releases_clean_bodies() {
    let e = engine();
    let clean = prose(50_000, 9);
    let chunks: Vec<&[u8]> = clean.as_bytes().chunks(997).collect();
    let (found, released) = stream(&e, BodyContext::body(), &chunks, Some((4096, 8192)));
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(released, clean.len() as u64);

    // Mid-stream: bytes well before the secret are released before the body ends, the secret's
    // first byte never is.
    let body = format!("{} {GH} {}", prose(40_000, 1), prose(40_000, 2));
    let pos = body.find(GH).unwrap() as u64;
    let mut sc = e.body_scanner(BodyContext::body()).unwrap();
    sc.set_segment(4096, 8192);
    let mut max_rel = 0;
    let mut hit = false;
    for c in body.as_bytes().chunks(1000) {
        let p = sc.feed(c).unwrap();
        hit |= !p.findings.is_empty();
        max_rel = max_rel.max(p.releasable);
        assert!(p.releasable <= pos);
    }
    let p = sc.finish().unwrap();
    assert!(hit || !p.findings.is_empty());
    assert!(p.releasable <= pos);
    assert!(
        max_rel > 30_000,
        "released only {max_rel} before the secret"
    );
}

#[test]
fn memory_stays_bounded_over_100_mib() {
    let e = engine();
    let chunk = prose(64 << 10, 7);
    let mut sc = e.body_scanner(BodyContext::body()).unwrap();
    let bound = sc.buffer_bound();
    assert!(bound <= 1 << 20, "bound {bound}");
    let mut last = 0;
    for _ in 0..1600 {
        let p = sc.feed(chunk.as_bytes()).unwrap();
        assert!(p.findings.is_empty());
        assert!(sc.buffered() <= bound);
        last = p.releasable;
    }
    assert!(last > (100 << 20) - (1 << 20), "releasable lags: {last}");
    assert_eq!(sc.finish().unwrap().releasable, 1600 * (64 << 10));
}

/// The buffer's allocation stays within the bound (growth by doubling overshot it: 512 KiB for a
/// 451 KiB bound) and stays small for a small body.
#[test]
fn buffer_allocation_stays_within_the_bound() {
    let e = engine();
    let chunk = prose(16 << 10, 3);
    let mut small = e.body_scanner(BodyContext::body()).unwrap();
    small.feed(chunk.as_bytes()).unwrap();
    assert!(small.reserved() <= 64 << 10, "{}", small.reserved());
    let mut sc = e.body_scanner(BodyContext::body()).unwrap();
    let bound = sc.buffer_bound();
    for _ in 0..64 {
        sc.feed(chunk.as_bytes()).unwrap();
        assert!(sc.reserved() <= bound, "{} > {bound}", sc.reserved());
    }
    assert!(sc.reserved() >= sc.buffered());
}

/// A base64 image-like run long enough to be decoded by regions, the token among binary bytes
/// (`k` shifts it across the three byte offsets).
fn image_piece(k: usize) -> String {
    let mut raw: Vec<u8> = (0..300 + k).map(|i| (i * 151 % 256) as u8 | 0x80).collect();
    raw.extend_from_slice(format!("tEXt {GH}").as_bytes());
    raw.extend((0..500).map(|i| (i * 97 % 256) as u8 | 0x80));
    format!(
        " {} ",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[test]
fn the_image_piece_holds_a_finding() {
    let e = engine();
    for k in 0..3 {
        let f = e.scan_bytes(image_piece(k).as_bytes(), false, Location::Body);
        assert!(
            f.iter().any(|f| f.rule_id == "github-classic-token"),
            "{k}: {f:?}"
        );
    }
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1000, 1usize..400).prop_map(|(s, n)| prose(n, s)),
        Just(format!(" {GH} ")),
        Just(format!(" {AWS}\n")),
        Just(format!(" {ANT} ")),
        Just(" https://u:Zq8#vL2!pR7x@h.io/ ".to_string()),
        Just(format!(
            " {} ",
            base64::engine::general_purpose::STANDARD.encode(format!("ab{GH}"))
        )),
        Just(format!(" {} ", GH.replace('_', "%5F"))),
        // An image-like run long enough to be decoded by regions, the token among binary bytes.
        (0usize..3).prop_map(image_piece),
        Just(format!(" \\u0067hp_{} ", &GH[4..])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    // Fewer pieces than the per-rule finding cap (16): past it, streaming reports the first 16.
    fn any_chunking_finds_the_same_secrets(pieces in prop::collection::vec(piece(), 1..12),
                                           cuts in prop::collection::vec(1usize..700, 1..40),
                                           trigger in 1usize..3000) {
        let e = engine();
        let body: String = pieces.concat();
        let bytes = body.as_bytes();
        let expected = keys(&e.scan_bytes(bytes, false, Location::Body));
        let mut chunks = Vec::new();
        let mut rest = bytes;
        for c in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let (a, b) = rest.split_at((*c).min(rest.len()));
            chunks.push(a);
            rest = b;
        }
        let (found, _) = stream(&e, BodyContext::body(), &chunks, Some((trigger, trigger * 2)));
        prop_assert_eq!(keys(&found), expected);
    }
}

/// Callers decide by rule: a host exempt from the rules still blocks known secrets, and a rule
/// in `warn` does not block. So a run of findings of one rule must not crowd out another rule's.
#[test]
fn many_findings_of_one_rule_do_not_hide_another() {
    use dlp_rules::{Engine, KnownSecret, SecretString};
    let known = "cred-Proxy-Injected-9f8e7d";
    let e = std::sync::Arc::new(
        Engine::from_packs(&[("test", TEST_PACK)])
            .unwrap()
            .with_known_secrets(vec![KnownSecret::new("K", SecretString::from(known))])
            .unwrap(),
    );
    let mut body = String::new();
    for i in 0..200 {
        body.push_str(&format!("{} {GH} ", prose(40, i)));
    }
    body.push_str(&format!("last {known} {ANT} end"));
    for chunks in [
        vec![body.as_bytes()],
        body.as_bytes().chunks(4096).collect(),
    ] {
        let (found, _) = stream(&e, BodyContext::body(), &chunks, Some((8192, 16384)));
        let of = |rule: &str| found.iter().filter(|f| f.rule_id == rule).count();
        assert_eq!(of("known-secret:K"), 1, "{found:?}");
        assert_eq!(of("anthropic-api-key"), 1, "{found:?}");
        let gh = of("github-classic-token");
        assert!((1..=16).contains(&gh), "per-rule cap: {gh}");
    }
}
