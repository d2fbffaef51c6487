//! The raw path against the whole escape layer, hit for hit.

use ::base64::Engine as _;
use secrecy::SecretString;

use super::*;
use crate::known::KnownSecret;
use crate::testgen::Lcg;

/// The same engine with the raw path off: every view with an escape is decoded whole.
fn decoded_only(e: &Engine) -> Engine {
    let mut d = e.without_rules(&[]).unwrap_or_else(|err| panic!("{err}"));
    d.plain = false;
    d
}

fn hits(e: &Engine, hay: &[u8]) -> Vec<Hit> {
    let mut out = Vec::new();
    e.scan_view(hay, false, &mut out);
    out
}

/// A JSON string body of `s` (quotes, line breaks and tabs escaped), without the outer quotes.
fn json(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for &b in s {
        match b {
            b'"' => v.extend_from_slice(b"\\\""),
            b'\n' => v.extend_from_slice(b"\\n"),
            b'\r' => v.extend_from_slice(b"\\r"),
            b'\t' => v.extend_from_slice(b"\\t"),
            0x08 => v.extend_from_slice(b"\\b"),
            0x0c => v.extend_from_slice(b"\\f"),
            _ => v.push(b),
        }
    }
    v
}

/// Text with every pack example, base64 of some (wrapped in lines, as PEM and MIME wrap),
/// quotes, line breaks and prose, JSON-escaped, cut and glued at random.
fn pieces(e: &Engine) -> Vec<Vec<u8>> {
    let b64 = ::base64::engine::general_purpose::STANDARD;
    let mut v: Vec<Vec<u8>> = Vec::new();
    for r in &e.rules {
        for ex in &r.info.examples {
            v.push(ex.as_bytes().to_vec());
            // Blanks as escapes: a rule's tail (`\s*=\s*"`) then only follows decoded.
            v.push(ex.replace(' ', "\t").into_bytes());
            v.push(ex.replace(' ', "\n").into_bytes());
            let enc = b64.encode(format!("token: {ex}\n"));
            let wrapped: Vec<u8> = enc
                .as_bytes()
                .chunks(64)
                .collect::<Vec<_>>()
                .join(&b"\n"[..]);
            v.push(wrapped);
            v.push(enc.into_bytes());
        }
    }
    for p in [
        &b"\n"[..],
        b"\r\n",
        b"\t",
        b"\"",
        b" ",
        b"\x08",
        b"\x0c",
        b"{\"auths\": {\"r.io\": {\"auth\": \"dXNlcjpwYXNzd29yZDEyMzQ1Njc4\"}}}",
        b"the of and to in is that for it with as was on be at by this ",
        b"https://github.com/rust-lang/regex/blob/master/src/lib.rs#L120",
        b"postgresql+asyncpg://admin:Sup3rS3cretPassw0rd@db.internal:5432/app",
        b"commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Dev <dev@example.com>",
        // Backslashes the JSON escaping above leaves alone: escapes that are none (`\q`, kept
        // as they are), and now and then one that sends the view to the whole escape layer.
        b"C:\\qrs\\zz",
        b"\\",
        b"\\",
        b"\\",
        b"\\",
        b"\\u0041KIAZ3MHTQJXW5RK7PLV",
        b"\\x41KIAZ3MHTQJXW5RK7PLV",
        b"k\\/\\/user:Pq7zW2xv9Lm4@db.example.com",
        b"%41",
        b"\\/",
    ] {
        v.push(p.to_vec());
    }
    v
}

#[test]
fn raw_path_finds_what_the_decoded_view_does() {
    let secrets = vec![
        KnownSecret::new("A", SecretString::from("Zq8pLm2vNx4rTk7wYb1c")),
        KnownSecret::new("B", SecretString::from("n0t-a-rule-but-known-42")),
    ];
    for engine in [
        Engine::builtin().unwrap(),
        Engine::builtin()
            .unwrap()
            .with_known_secrets(secrets)
            .unwrap(),
    ] {
        assert!(engine.plain);
        let reference = decoded_only(&engine);
        let mut pieces = pieces(&engine);
        pieces.push(b"Zq8pLm2vNx4rTk7wYb1c".to_vec());
        pieces.push(b"n0t-a-rule-but-known-42".to_vec());
        let mut rng = Lcg::new(23);
        let (mut raw_path, mut found) = (0, 0);
        for case in 0..1500usize {
            let mut text = Vec::new();
            let target = 40 + case % 3000;
            while text.len() < target {
                let p = &pieces[(rng.next() as usize) % pieces.len()];
                // Sometimes only part of a piece, so hits and runs are cut anywhere.
                let cut = if rng.next().is_multiple_of(4) {
                    (rng.next() as usize) % (p.len() + 1)
                } else {
                    p.len()
                };
                text.extend_from_slice(&p[..cut]);
            }
            let hay = json(&text);
            if !escape::needs_normalize(&hay, false) {
                continue;
            }
            raw_path += usize::from(escape::raw_safe(&hay));
            let want = hits(&reference, &hay);
            let got = hits(&engine, &hay);
            found += want.len();
            if got != want {
                let only_got: Vec<_> = got.iter().filter(|h| !want.contains(h)).collect();
                let only_want: Vec<_> = want.iter().filter(|h| !got.contains(h)).collect();
                let at = only_got
                    .iter()
                    .chain(&only_want)
                    .map(|h| h.start)
                    .min()
                    .unwrap_or(0);
                let ctx = &hay[at.saturating_sub(120)..(at + 200).min(hay.len())];
                panic!(
                    "case {case}: raw path only {only_got:?}, decoded only {only_want:?} near {:?}",
                    String::from_utf8_lossy(ctx)
                );
            }
        }
        assert!(raw_path > 700, "{raw_path}");
        assert!(found > 1000, "{found}");
    }
}

/// The block-mask check answers as a byte-by-byte walk, an offending byte at every offset of a
/// block, with harmless escapes around.
#[test]
fn raw_safe_matches_a_bytewise_walk() {
    let mut rng = Lcg::new(5);
    let bad: [&[u8]; 7] = [b"%", b"\\\\", b"\\/", b"\\u", b"\\x", b"\\'", b"\\"];
    let good: [&[u8]; 5] = [b"\\n", b"\\\"", b"\\q", b"\\t", b"ab"];
    let mut seen = [0usize; 2];
    for len in [0usize, 1, 5, 17, 18, 19, 33, 63, 64, 65, 100, 200] {
        for at in 0..len.max(1) {
            let mut hay: Vec<u8> = (0..len)
                .map(|_| b"abc -_xy"[(rng.next() % 8) as usize])
                .collect();
            let piece = if rng.next().is_multiple_of(3) {
                rng.pick(&good)
            } else {
                rng.pick(&bad)
            };
            hay.splice(at.min(len)..at.min(len), piece.iter().copied());
            let g = rng.pick(&good);
            let p = (rng.next() as usize) % (hay.len() + 1);
            hay.splice(p..p, g.iter().copied());
            let want = (0..hay.len()).all(|p| escape::safe_at(&hay, p));
            assert_eq!(
                escape::raw_safe(&hay),
                want,
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
            seen[usize::from(want)] += 1;
        }
    }
    assert!(seen[0] > 100 && seen[1] > 100, "{seen:?}");
}

#[test]
fn quoted_keywords_are_found_escaped() {
    let v = escaped_spellings(b"\"auths\"");
    assert_eq!(
        v,
        vec![
            b"\\\"auths\"".to_vec(),
            b"\"auths\\\"".to_vec(),
            b"\\\"auths\\\"".to_vec()
        ]
    );
    let e = Engine::builtin().unwrap();
    let body =
        br#"{\"auths\": {\"registry.example.io\": {\"auth\": \"dXNlcjpwYXNzd29yZDEyMzQ1Njc4\"}}}"#;
    let got = hits(&e, body);
    assert!(!got.is_empty());
    assert_eq!(got, hits(&decoded_only(&e), body));
}

/// Rules that read across escapes: a tail of blanks and a quote, a tail that needs a line
/// break, and matches whose decoded length nears the window while their raw bytes are twice
/// as long (a window measured on the raw bytes would cut them).
const ACROSS: &str = r#"
[[rule]]
id = "t-blank-tail"
description = "keyword, blanks, quoted value"
regex = '''zqkey\s*=\s*"([A-Z]{12})"'''
keywords = ["zqkey"]
severity = "high"
secret_group = 1
examples = ['zqkey = "ABCDEFGHIJKL"']

[[rule]]
id = "t-line-tail"
description = "keyword, then a value on the next line"
regex = '''zqnl[a-z ]{0,20}\n([A-Z]{12})'''
keywords = ["zqnl"]
severity = "high"
secret_group = 1
examples = ["zqnl value\nABCDEFGHIJKL"]

[[rule]]
id = "t-rare-byte"
description = "a tail with a rare byte (`@`) near its end"
regex = '''zqat[a-z\s]{0,40}@([A-Z]{12})'''
keywords = ["zqat"]
severity = "high"
secret_group = 1
examples = ["zqat to @ABCDEFGHIJKL"]

[[rule]]
id = "t-far-after"
description = "a value far after the keyword"
regex = '''zqfar\s{100,200}([A-Z]{12})'''
keywords = ["zqfar"]
severity = "high"
secret_group = 1
window = 256
examples = ["zqfar                                                                                                    ABCDEFGHIJKL"]

[[rule]]
id = "t-far-before"
description = "a value far before the keyword"
regex = '''([A-Z]{12})\s{100,200}zqend'''
keywords = ["zqend"]
severity = "high"
secret_group = 1
window = 256
examples = ["ABCDEFGHIJKL                                                                                                    zqend"]
"#;

#[test]
fn windows_and_tails_across_escapes() {
    let e = Engine::from_packs(&[("across", ACROSS)]).unwrap();
    assert!(e.plain);
    let reference = decoded_only(&e);
    let value = "QXZRMBTKWPLV";
    let nl = "\n".repeat(150);
    let cases = [
        format!("x zqkey\t=\t\"{value}\" y"),
        format!("x zqkey\n=\n\"{value}\" y"),
        format!("x zqnl some words\n{value} y"),
        format!("x zqat{}@{value} y", "\n".repeat(40)),
        format!("x zqfar{nl}{value} y"),
        format!("x {value}{nl}zqend y"),
        format!("x zqfar{}\t{value} y", "\t\n".repeat(70)),
    ];
    // A tail's rare byte is never one a plain escape decodes to (`Tails::live_plain` would
    // otherwise have to skip its search).
    for b in 0..=255u8 {
        if escape::plain_output(b) {
            let set = crate::required::ByteSet::of(&[b]);
            assert_eq!(crate::required::confirm_byte(set, &[]), None, "{b:#x}");
        }
    }
    for case in &cases {
        let hay = json(case.as_bytes());
        assert!(escape::raw_safe(&hay));
        let want = hits(&reference, &hay);
        assert_eq!(want.len(), 1, "{case:?}: {want:?}");
        assert_eq!(hits(&e, &hay), want, "{case:?}");
    }
}

/// Escapes that decode to a letter or a `/` send the view to the whole escape layer: the raw
/// bytes do not hold the keyword they spell.
#[test]
fn escapes_that_make_keywords_are_decoded() {
    let e = Engine::builtin().unwrap();
    for body in [
        r#"{"k": "\u0067hp_4Rb1yQ8wLx2ZkP0sTnV7cF3hJ9mD6eGa5uWi", "n": "a\nb"}"#,
        r#"{"k": "\x67hp_4Rb1yQ8wLx2ZkP0sTnV7cF3hJ9mD6eGa5uWi", "n": "a\nb"}"#,
        r#"{"k": "gh\u0070_4Rb1yQ8wLx2ZkP0sTnV7cF3hJ9mD6eGa5uWi", "n": "a\nb"}"#,
        r#"{"u": "postgres:\/\/admin:Sup3rS3cretPassw0rd@db.internal:5432\/app", "n": "a\nb"}"#,
    ] {
        let got = hits(&e, body.as_bytes());
        assert!(!got.is_empty(), "{body}");
        assert_eq!(got, hits(&decoded_only(&e), body.as_bytes()), "{body}");
    }
}
