//! Compressed bodies: the bytes a receiver gets are the compressed ones, so what the decoded
//! stream never shows (container fields, frames that decode to nothing) must be scanned as
//! bytes, and a raw prefix is released only once everything it can decode to was cleared.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "engine_support.rs"]
mod support;

use std::io::Write;
use std::sync::Arc;

use dlp_rules::{BodyContext, DlpError, Engine, Finding};
use support::*;

/// Feeds `body` in `step`-byte chunks; returns the findings, and the largest release made
/// before `finish` together with the final one.
fn scan(e: &Arc<Engine>, coding: &str, body: &[u8], step: usize) -> (Vec<Finding>, u64, u64) {
    let mut sc = e
        .body_scanner(BodyContext::body().with_content_encoding(coding))
        .unwrap();
    sc.set_segment(4096, 8192);
    let (mut found, mut early) = (Vec::new(), 0);
    for c in body.chunks(step) {
        let p = sc.feed(c).unwrap();
        found.extend(p.findings);
        early = early.max(p.releasable);
    }
    let p = sc.finish().unwrap();
    found.extend(p.findings);
    (found, early, p.releasable)
}

fn position(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// gzip's FNAME, FCOMMENT and FEXTRA fields decode to nothing but reach the receiver verbatim.
#[test]
fn a_secret_in_a_gzip_header_field_is_found_and_held() {
    let e = engine();
    for field in ["filename", "comment", "extra"] {
        let builder = flate2::GzBuilder::new();
        let builder = match field {
            "filename" => builder.filename(GH),
            "comment" => builder.comment(GH),
            _ => builder.extra(format!("xx{GH}")),
        };
        let mut gz = builder.write(Vec::new(), flate2::Compression::default());
        gz.write_all(prose(20_000, 1).as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let at = position(&gz, GH.as_bytes()) as u64;
        let (found, early, last) = scan(&e, "gzip", &gz, 7);
        assert!(
            found
                .iter()
                .any(|f| f.rule_id == "github-classic-token" && f.encoding == "undecoded"),
            "{field}: {found:?}"
        );
        assert!(early.max(last) <= at, "{field}: released into the token");
    }
}

/// A zstd skippable frame is skipped by every decoder and kept by every store.
#[test]
fn a_secret_in_a_zstd_skippable_frame_is_found_and_held() {
    let e = engine();
    let mut z = vec![0x50, 0x2A, 0x4D, 0x18];
    z.extend_from_slice(&(GH.len() as u32 + 2).to_le_bytes());
    z.extend_from_slice(format!(" {GH} ").as_bytes());
    z.extend(zstd::encode_all(prose(50_000, 2).as_bytes(), 3).unwrap());
    let (found, early, last) = scan(&e, "zstd", &z, 5);
    assert!(
        found.iter().any(|f| f.rule_id == "github-classic-token"),
        "{found:?}"
    );
    assert!(early.max(last) <= 9, "released into the token");
}

/// zstd's `flush` does not notice a frame that stops early; its last block was never decoded,
/// so never scanned.
#[test]
fn a_truncated_zstd_frame_is_refused() {
    let e = engine();
    let z = zstd::encode_all(format!("{} {GH}", prose(2000, 3)).as_bytes(), 3).unwrap();
    for cut in [1, 4, z.len() / 2] {
        let mut sc = e
            .body_scanner(BodyContext::body().with_content_encoding("zstd"))
            .unwrap();
        sc.feed(&z[..z.len() - cut]).unwrap();
        let err = sc.finish().unwrap_err();
        assert!(
            matches!(
                err,
                DlpError::Decode {
                    encoding: "zstd",
                    ..
                }
            ),
            "cut {cut}: {err}"
        );
    }
    // The whole frame, and an empty body, still pass.
    let (found, _, _) = scan(&e, "zstd", &z, 100);
    assert_eq!(found.len(), 1);
    let mut sc = e
        .body_scanner(BodyContext::body().with_content_encoding("zstd"))
        .unwrap();
    assert!(sc.finish().is_ok());
}

fn decoded_len(z: &[u8]) -> usize {
    let mut d = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
    let _ = d.write_all(z);
    let _ = d.flush();
    d.get_ref().len()
}

/// A zstd block yields nothing until it is whole, so a raw prefix that ends inside one holds
/// coded bytes (Huffman literals) the scanner has not seen decoded. Every release must end
/// where a block does: there, and only there, the decoder emits more than one byte earlier.
#[test]
fn zstd_is_released_only_at_block_ends() {
    let e = engine();
    let body = format!("{} {GH} {}", prose(600_000, 4), prose(20_000, 5));
    let z = zstd::encode_all(body.as_bytes(), 3).unwrap();
    let mut sc = e
        .body_scanner(BodyContext::body().with_content_encoding("zstd"))
        .unwrap();
    sc.set_segment(4096, 8192);
    let mut releases = std::collections::BTreeSet::new();
    for c in z.chunks(1000) {
        releases.insert(sc.feed(c).unwrap().releasable);
    }
    assert!(sc.has_findings());
    let mid: Vec<u64> = releases
        .into_iter()
        .filter(|&r| r > 0 && r < z.len() as u64)
        .collect();
    assert!(!mid.is_empty(), "nothing was released before the end");
    for r in mid {
        let r = r as usize;
        assert!(
            decoded_len(&z[..r]) > decoded_len(&z[..r - 1]),
            "released {r} bytes, inside a block"
        );
    }
}

/// Stacked codings are refused: an inner layer's container fields (a gzip FNAME inside gzip, a
/// skippable frame inside zstd) would decode to nothing and show in no scanned stream.
#[test]
fn stacked_codings_are_refused() {
    let e = engine();
    for coding in [
        "gzip, gzip",
        "zstd, gzip",
        "zstd, zstd",
        "br, deflate",
        "gzip, identity, br",
    ] {
        let err = e
            .body_scanner(BodyContext::body().with_content_encoding(coding))
            .unwrap_err();
        assert!(
            matches!(err, DlpError::UnsupportedEncoding(_)),
            "{coding}: {err}"
        );
    }
    for one in [
        "gzip",
        "identity, gzip",
        "x-gzip",
        "zstd",
        "br",
        "deflate",
        "identity",
    ] {
        assert!(
            e.body_scanner(BodyContext::body().with_content_encoding(one))
                .is_ok(),
            "{one}"
        );
    }
}
