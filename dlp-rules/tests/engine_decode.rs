//! Decoding layers through the engine: escapes, base64/hex, content-encodings (and bombs),
//! multipart, known secrets, URL/header surfaces, redaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "engine_support.rs"]
mod support;

use std::io::Write;
use std::sync::Arc;

use base64::Engine as _;
use dlp_rules::{
    BodyContext, DecompressLimits, DlpError, Engine, KnownSecret, Location, SecretString,
};
use support::*;

fn rules_found(e: &Engine, body: &str) -> Vec<String> {
    e.scan_bytes(body.as_bytes(), false, Location::Body)
        .into_iter()
        .map(|f| f.rule_id)
        .collect()
}

#[test]
fn escape_layers() {
    let e = engine();
    let pct: String = GH.bytes().map(|b| format!("%{b:02X}")).collect();
    let uni: String = GH.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let double = GH.replace('_', "%255F");
    for body in [
        format!("q={pct}&x=1"),
        format!("{{\"t\":\"{uni}\"}}"),
        format!("a {double} b"),
        format!("{{\"line\":\"first\\n{AWS}\\nnext\"}}"),
        "{\"u\":\"https:\\/\\/bob:Zq8#vL2!pR7x@db.local\\/x\"}".to_string(),
    ] {
        let found = rules_found(&e, &body);
        assert!(!found.is_empty(), "nothing in {body}");
    }
    // Form bodies: `+` is a space, so the keyword-gated password rule sees its separator.
    let form = "user=a&password+=+xK9%23mQ2%24vL7%40pR4";
    let ctx = BodyContext::body().with_content_type("application/x-www-form-urlencoded");
    let (found, _) = stream(&e, ctx, &[form.as_bytes()], None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule_id, "generic-password");
}

#[test]
fn base64_at_every_offset_both_alphabets_and_hex() {
    let e = engine();
    for alpha in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for prefix in ["", "a", "ab", "abc"] {
            for glue in ["", "Q", "QQ", "QQQ"] {
                let enc = alpha.encode(format!("{prefix} {GH} tail"));
                let body = format!("{{\"data\":\"{glue}{enc}\"}}");
                let f = e.scan_bytes(body.as_bytes(), false, Location::Body);
                assert!(
                    f.iter()
                        .any(|f| f.rule_id == "github-classic-token"
                            && f.encoding.contains("base64")),
                    "{body}"
                );
            }
        }
    }
    let hex: String = format!("k={AWS};")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(rules_found(&e, &format!("x {hex} y")).contains(&"aws-access-key-id".to_string()));
    assert!(rules_found(&e, &format!("x 7{hex} y")).contains(&"aws-access-key-id".to_string()));
    // A JSON-escaped base64 value (`\/`) and a base64 PEM (nested layer).
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MmZLtC9NqmSfbVUq\nB3hY2lNsK7pG1CiBMiF5WyZk8vB3T9HmSxJvq2w=\n-----END RSA PRIVATE KEY-----\n";
    let b64pem = base64::engine::general_purpose::STANDARD.encode(pem);
    let escaped = b64pem.replace('/', "\\/");
    assert!(rules_found(&e, &format!("{{\"tls.key\":\"{escaped}\"}}"))
        .contains(&"private-key".to_string()));
    let twice =
        base64::engine::general_purpose::STANDARD.encode(format!("{{\"key\":\"{b64pem}\"}}"));
    assert!(rules_found(&e, &twice).contains(&"private-key".to_string()));
}

/// A token inside an image-like base64 payload (random bytes around it, other text segments
/// before and after): found, and reported at the base64 characters that encode it, so the
/// stream holds back the right bytes.
#[test]
fn base64_of_binary_reports_the_token_at_its_characters() {
    let e = engine();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut binary = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                (rng >> 56) as u8 | 0x80
            })
            .collect()
    };
    for lead in [3000usize, 3001, 3002, 4095] {
        let mut plain = binary(lead);
        plain.extend_from_slice(b"tEXtComment lorem ipsum");
        plain.extend(binary(500));
        let at = plain.len();
        plain.extend_from_slice(GH.as_bytes());
        plain.extend(binary(700));
        plain.extend_from_slice(b"IEND dolor sit amet");
        plain.extend(binary(2000));
        let enc = base64::engine::general_purpose::STANDARD.encode(&plain);
        let head = "{\"type\":\"image\",\"data\":\"";
        let body = format!("{head}{enc}\"}}");
        let f = e.scan_bytes(body.as_bytes(), false, Location::Body);
        let gh: Vec<_> = f
            .iter()
            .filter(|f| f.rule_id == "github-classic-token")
            .collect();
        assert_eq!(gh.len(), 1, "lead {lead}: {f:?}");
        // Characters encoding bytes [at, at + len): quads at/3 .. ceil((at + len)/3).
        let first = head.len() + at / 3 * 4;
        let last = head.len() + (at + GH.len()).div_ceil(3) * 4;
        let (s, end) = (gh[0].offset as usize, gh[0].offset as usize + gh[0].length);
        assert!(s >= first && s <= first + 3, "lead {lead}: {s} vs {first}");
        assert!(
            end <= last && end + 3 >= last,
            "lead {lead}: {end} vs {last}"
        );
    }
}

#[test]
fn multipart_with_wrapped_base64_part() {
    let e = engine();
    let payload = format!("{} {ANT} {}", prose(100, 1), prose(100, 2));
    let enc = base64::engine::general_purpose::STANDARD.encode(payload);
    let wrapped: Vec<String> = enc
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"k.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--XyZ--\r\n",
        wrapped.join("\r\n")
    );
    let ctx = BodyContext::body().with_content_type("multipart/form-data; boundary=XyZ");
    let (found, _) = stream(&e, ctx, &[body.as_bytes()], None);
    assert!(
        found.iter().any(|f| f.rule_id == "anthropic-api-key"),
        "{found:?}"
    );
    // Raw parts are covered by scanning the whole body.
    let raw =
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n{GH}\r\n--XyZ--\r\n");
    assert_eq!(
        rules_found(&e, &raw),
        vec!["github-classic-token".to_string()]
    );
}

fn compressed(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "gzip" => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        "deflate" => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        "deflate-raw" => {
            let mut w =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn secret_in_every_content_encoding_is_found_and_held() {
    let e = engine();
    let body = format!("{} {GH} {}", prose(300_000, 3), prose(50_000, 4));
    for kind in ["gzip", "deflate", "deflate-raw", "br", "zstd"] {
        let comp = compressed(kind, body.as_bytes());
        let header = if kind == "deflate-raw" {
            "deflate"
        } else {
            kind
        };
        let chunks: Vec<&[u8]> = comp.chunks(1500).collect();
        let mut sc = e
            .body_scanner(BodyContext::body().with_content_encoding(header))
            .unwrap();
        let mut found = Vec::new();
        let mut rel = 0;
        for c in &chunks {
            let p = sc.feed(c).unwrap();
            found.extend(p.findings);
            rel = p.releasable;
        }
        let p = sc.finish().unwrap();
        found.extend(p.findings);
        assert_eq!(found.len(), 1, "{kind}: {found:?}");
        assert!(
            found[0].encoding.starts_with(header),
            "{}",
            found[0].encoding
        );
        assert!(
            rel.max(p.releasable) < comp.len() as u64,
            "{kind}: released everything"
        );
        // A clean compressed body is released in full, and partly before the end.
        let clean = compressed(kind, prose(400_000, 5).as_bytes());
        let mut sc = e
            .body_scanner(BodyContext::body().with_content_encoding(header))
            .unwrap();
        // Rounds smaller than the compressed body: the raw bytes are scanned in rounds too.
        sc.set_segment(16 << 10, 32 << 10);
        let mut mid = 0;
        for c in clean.chunks(1500) {
            mid = sc.feed(c).unwrap().releasable;
        }
        assert_eq!(
            sc.finish().unwrap().releasable,
            clean.len() as u64,
            "{kind}"
        );
        assert!(mid > 0, "{kind}: nothing released before the end");
    }
}

#[test]
fn decompression_bomb_is_refused() {
    let e = engine();
    let zeros = vec![0u8; 64 << 20];
    for kind in ["gzip", "zstd", "br"] {
        let bomb = compressed(kind, &zeros);
        let mut sc = e
            .body_scanner(BodyContext::body().with_content_encoding(kind))
            .unwrap();
        let mut err = None;
        for c in bomb.chunks(4096).chain(std::iter::once(&[][..])) {
            let r = if c.is_empty() {
                sc.finish()
            } else {
                sc.feed(c)
            };
            if let Err(x) = r {
                err = Some(x);
                break;
            }
        }
        assert!(
            matches!(err, Some(DlpError::DecompressionLimit(_))),
            "{kind}: {err:?}"
        );
    }
    // Size limit independent of ratio.
    let mut ctx = BodyContext::body().with_content_encoding("gzip");
    ctx.limits = DecompressLimits {
        max_output: 100_000,
        ..DecompressLimits::default()
    };
    let mut sc = e.body_scanner(ctx).unwrap();
    let r = sc
        .feed(&compressed("gzip", prose(200_000, 1).as_bytes()))
        .and_then(|_| sc.finish());
    assert!(matches!(r, Err(DlpError::DecompressionLimit(_))), "{r:?}");
    // Unknown codings and corrupt data are errors, never a pass.
    assert!(matches!(
        e.body_scanner(BodyContext::body().with_content_encoding("compress")),
        Err(DlpError::UnsupportedEncoding(_))
    ));
    let mut sc = e
        .body_scanner(BodyContext::body().with_content_encoding("gzip"))
        .unwrap();
    assert!(sc.feed(b"definitely not gzip data at all").is_err());
}

#[test]
fn known_secrets_in_every_encoding() {
    let value = "cred-Proxy-Injected-9f8e7d";
    let e = Arc::new(
        Engine::from_packs(&[("test", TEST_PACK)])
            .unwrap()
            .with_known_secrets(vec![
                KnownSecret::new("GITEA_TOKEN", SecretString::from(value)),
                KnownSecret::new("SHORT", SecretString::from("abc")),
            ])
            .unwrap(),
    );
    let pct: String = value.bytes().map(|b| format!("%{b:02x}")).collect();
    let hex: String = value.bytes().map(|b| format!("{b:02X}")).collect();
    let mut cases = vec![
        format!("x {value} y"),
        format!("q={pct}"),
        format!("h {hex} h"),
        // An escape glued in front eats the encoding's first characters in the decoded view
        // (`%63` -> `c`, `\u0063` -> `c`): only the raw bytes hold it whole.
        format!("q=%{hex}"),
        format!("{{\"k\":\"\\u00{hex}\"}}"),
        format!("{{\"k\":\"\\x{}\"}}", hex.to_lowercase()),
    ];
    for pre in ["", "a", "ab"] {
        cases.push(base64::engine::general_purpose::URL_SAFE.encode(format!("{pre}{value}")));
    }
    for c in &cases {
        let f = e.scan_bytes(c.as_bytes(), false, Location::Body);
        assert!(
            f.iter().any(|f| f.rule_id == "known-secret:GITEA_TOKEN"),
            "{c}"
        );
        assert!(!format!("{f:?}").contains(value));
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("git:{value}"));
    let f = e.scan_header("Authorization", format!("Basic {basic}").as_bytes());
    assert!(
        f.iter().any(|f| f.rule_id == "known-secret:GITEA_TOKEN"),
        "{f:?}"
    );
    assert!(e
        .scan_bytes(b"abc abc abc", false, Location::Body)
        .is_empty());
    assert!(!format!("{e:?}").contains(value));
}

#[test]
fn url_and_header_surfaces() {
    let e = engine();
    let f = e.scan_url(&format!(
        "/search?q=hello+world&key={}",
        GH.replace('_', "%5f")
    ));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].location, Location::Url);
    assert!(e.scan_url("/v1/messages?beta=true").is_empty());
    let f = e.scan_header("X-Custom", AWS.as_bytes());
    assert_eq!(
        f[0].location,
        Location::Header {
            name: "x-custom".into()
        }
    );
    assert!(e
        .scan_header("User-Agent", b"claude-cli/1.0 (external, cli)")
        .is_empty());
}

#[test]
fn findings_never_carry_the_value() {
    let e = engine();
    let f = e.scan_bytes(format!("t={ANT}").as_bytes(), false, Location::Body);
    assert_eq!(f.len(), 1);
    let json = serde_json::to_string(&f[0]).unwrap();
    for s in [format!("{:?}", f[0]), f[0].to_string(), json] {
        assert!(!s.contains(&ANT[13..30]), "{s}");
        assert!(s.contains("anthropic-api-key"));
    }
}

#[test]
fn rule_overrides_and_keywordless_rules() {
    let e = engine();
    let without = e.without_rules(&["github-classic-token"]).unwrap();
    assert!(rules_found(&without, GH).is_empty());
    assert!(e.without_rules(&["no-such-rule"]).is_err());
    let pack = "[[rule]]\nid = \"bare-hex-40\"\ndescription = \"d\"\nregex = '''\\b[0-9a-f]{40}\\b'''\nseverity = \"low\"\nexamples = [\"x\"]\n";
    let e = Engine::from_packs(&[("k", pack)]).unwrap();
    assert_eq!(
        e.keywordless_rules().collect::<Vec<_>>(),
        vec!["bare-hex-40"]
    );
    assert_eq!(
        rules_found(&e, "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 ok").len(),
        1
    );
    // Contract checks: bad regex, duplicate ids, unknown fields, bad group are load errors.
    for bad in [
        "[[rule]]\nid = \"a\"\ndescription = \"d\"\nregex = '''(('''\nseverity = \"low\"\n",
        "[[rule]]\nid = \"a\"\ndescription = \"d\"\nregex = 'x'\nseverity = \"low\"\nkeywords=[\"xx\"]\n[[rule]]\nid = \"a\"\ndescription = \"d\"\nregex = 'x'\nseverity = \"low\"\nkeywords=[\"xx\"]\n",
        "[[rule]]\nid = \"a\"\ndescription = \"d\"\nregex = 'x'\nseverity = \"low\"\nentrop = 3.0\n",
        "[[rule]]\nid = \"a\"\ndescription = \"d\"\nregex = 'x'\nseverity = \"low\"\nsecret_group = 1\n",
    ] {
        assert!(Engine::from_packs(&[("bad", bad)]).is_err(), "{bad}");
    }
    assert!(matches!(Engine::from_packs(&[]), Err(DlpError::NoRules)));
}

#[test]
fn scan_reader_streams_files_and_gunzips() {
    let e = engine();
    let body = format!("{} {GH}\n", prose(600_000, 8));
    let f = dlp_rules::scan_reader(&e, body.as_bytes(), "req.json").unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].offset as usize, body.find(GH).unwrap());
    let gz = compressed("gzip", body.as_bytes());
    let f = dlp_rules::scan_reader(&e, gz.as_slice(), "req.json.gz").unwrap();
    assert_eq!(f.len(), 1);
    assert!(f[0].encoding.starts_with("gzip"));
}

/// Regression: in a form or a query, `+` means space and the decoded view replaced the raw one,
/// so a known secret holding `+` (raw, or in its standard base64) and rule secrets whose alphabet
/// holds `+` were never compared with the bytes actually sent.
#[test]
fn plus_in_form_context_hides_nothing() {
    const PLUS: &str = "btl-e2e-9xQ2+vK7/wR4=mZ8pL3nT6yH1qJ5";
    const TILDE: &str = "btl-e2e-tilde~>Qw8Zr5Tn2Lk7Vb4Xs";
    let e = Arc::new(
        Engine::builtin()
            .unwrap()
            .with_known_secrets(vec![
                KnownSecret::new("PLUS", SecretString::from(PLUS)),
                KnownSecret::new("TILDE", SecretString::from(TILDE)),
            ])
            .unwrap(),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(TILDE);
    assert!(b64.contains('+'));
    let form = || BodyContext::body().with_content_type("application/x-www-form-urlencoded");
    let has = |f: &[dlp_rules::Finding], id: &str| f.iter().any(|f| f.rule_id == id);
    // URL query (form semantics) and form bodies, raw and base64, alone and inside fields.
    let f = e.scan_url(&format!("/echo?q={PLUS}"));
    assert!(has(&f, "known-secret:PLUS"), "{f:?}");
    let f = e.scan_url(&format!("/echo?a=1&q={b64}&b=2"));
    assert!(has(&f, "known-secret:TILDE"), "{f:?}");
    for (body, id) in [
        (PLUS.to_string(), "known-secret:PLUS"),
        (format!("a=b+c&tok={PLUS}&x=%41"), "known-secret:PLUS"),
        (b64.clone(), "known-secret:TILDE"),
        (format!("data={b64}&more=%2F"), "known-secret:TILDE"),
    ] {
        let f = stream(&e, form(), &[body.as_bytes()], None).0;
        assert!(has(&f, id), "{body}: {f:?}");
        assert!(!format!("{f:?}").contains(PLUS) && !format!("{f:?}").contains(TILDE));
    }
    // Known secrets next to escapes that eat their first bytes in the decoded view.
    let hex: String = TILDE.bytes().map(|b| format!("{b:02x}")).collect();
    for body in [format!("x=%4{hex}"), format!("{{\"a\":\"\\u00{hex}\"}}")] {
        let f = e.scan_bytes(body.as_bytes(), true, Location::Body);
        assert!(has(&f, "known-secret:TILDE"), "{body}: {f:?}");
    }
    // Rule secrets with `+` in their alphabet: an AWS secret key, and a PEM key base64-wrapped
    // whose base64 holds `+`, sent unescaped in a form.
    let aws = "aws_secret_access_key=Md4F323/M6cM+RgKstWZ9CxqvH3YSMsVCDjAOwtm&x=1";
    let f = stream(&e, form(), &[aws.as_bytes()], None).0;
    assert!(has(&f, "aws-secret-access-key"), "{f:?}");
    assert!(has(
        &e.scan_url(&format!("/p?{aws}")),
        "aws-secret-access-key"
    ));
    let mut payload = vec![0xfb, 0xef, 0xbe]; // encodes as `++++`
    payload.extend_from_slice(format!(" {GH} ").as_bytes());
    let gh_b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    assert!(gh_b64.starts_with("++++"));
    let body = format!("payload={gh_b64}");
    let f = stream(&e, form(), &[body.as_bytes()], None).0;
    assert!(has(&f, "github-pat"), "{gh_b64}: {f:?}");
}
