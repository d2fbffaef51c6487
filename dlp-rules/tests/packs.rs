//! Checks the rule packs in `rules/*.toml` as data, independently of the engine: every rule parses,
//! compiles, matches its examples, rejects its negatives, and is gated by a distinctive keyword that
//! the engine's prefilter can rely on (every match contains one, and fits in the confirm window).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Rules allowed to have no keyword (the engine must run them over the whole text). Keep it ≤ 5.
const PREFIXLESS_ALLOWLIST: &[&str] = &[];
/// Words that would make the prefilter fire everywhere.
const WEAK_KEYWORDS: &[&str] = &[
    "sk", "ey", "api", "key", "token", "secret", "password", "pass",
];
/// Validators the engine implements; a rule may only name one of these.
const KNOWN_VALIDATORS: &[&str] = &[];
/// Confirm window the engine uses when a rule does not set one.
const DEFAULT_WINDOW: usize = 256;
const MIN_RULES: usize = 80;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pack {
    rule: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    id: String,
    description: String,
    regex: String,
    keywords: Vec<String>,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    validator: Option<String>,
    severity: Severity,
    examples: Vec<String>,
    negatives: Vec<String>,
    window: Option<usize>,
    /// Keywords match ASCII-case-insensitively (the engine expands the case variants).
    #[serde(default)]
    case_insensitive_keywords: bool,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

struct Loaded {
    family: String,
    rule: Rule,
    re: regex::Regex,
    /// The same pattern as the engine may compile it: bytes, ASCII-only classes.
    re_bytes: regex::bytes::Regex,
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn load() -> Vec<Loaded> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .expect("rules dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule packs found");
    let mut out = Vec::new();
    for path in files {
        let family = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let pack: Pack =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!pack.rule.is_empty(), "{family}: empty pack");
        for rule in pack.rule {
            let re = regex::Regex::new(&rule.regex)
                .unwrap_or_else(|e| panic!("{}: regex does not compile: {e}", rule.id));
            let re_bytes = regex::bytes::RegexBuilder::new(&rule.regex)
                .unicode(false)
                .build()
                .unwrap_or_else(|e| panic!("{}: not ASCII-compilable: {e}", rule.id));
            out.push(Loaded {
                family: family.clone(),
                rule,
                re,
                re_bytes,
            });
        }
    }
    out
}

/// Shannon entropy in bits per byte; the engine computes it the same way.
fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A qualifying hit: (whole match, secret) where the secret passes the entropy minimum.
fn hits<'t>(l: &Loaded, text: &'t str) -> Vec<(&'t str, &'t str)> {
    let group = l.rule.secret_group.unwrap_or(0);
    l.re.captures_iter(text)
        .filter_map(|c| {
            let whole = c.get(0)?.as_str();
            let secret = c.get(group)?.as_str();
            let ok = l
                .rule
                .entropy
                .is_none_or(|min| entropy(secret.as_bytes()) >= min);
            ok.then_some((whole, secret))
        })
        .collect()
}

fn hits_bytes(l: &Loaded, text: &str) -> usize {
    let group = l.rule.secret_group.unwrap_or(0);
    l.re_bytes
        .captures_iter(text.as_bytes())
        .filter(|c| {
            c.get(group).is_some_and(|m| {
                l.rule
                    .entropy
                    .is_none_or(|min| entropy(m.as_bytes()) >= min)
            })
        })
        .count()
}

/// Whether `whole` holds keyword `k` the way the engine's prefilter would see it.
fn holds(rule: &Rule, whole: &str, k: &str) -> bool {
    if rule.case_insensitive_keywords {
        whole.to_ascii_lowercase().contains(&k.to_ascii_lowercase())
    } else {
        whole.contains(k)
    }
}

fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('-')
        && !id.ends_with('-')
        && !id.contains("--")
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[test]
fn packs_parse_with_unique_kebab_ids_and_enough_rules() {
    let rules = load();
    assert!(
        rules.len() >= MIN_RULES,
        "{} rules, need {MIN_RULES}",
        rules.len()
    );
    let mut seen = BTreeSet::new();
    for l in &rules {
        assert!(is_kebab(&l.rule.id), "id not kebab-case: {}", l.rule.id);
        assert!(seen.insert(l.rule.id.clone()), "duplicate id {}", l.rule.id);
        assert!(
            !l.rule.description.trim().is_empty(),
            "{}: empty description",
            l.rule.id
        );
        if let Some(v) = &l.rule.validator {
            assert!(
                KNOWN_VALIDATORS.contains(&v.as_str()),
                "{}: unknown validator {v}",
                l.rule.id
            );
        }
    }
    let mut per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &rules {
        *per_family.entry(l.family.as_str()).or_default() += 1;
    }
    println!("{} rules: {per_family:?}", rules.len());
}

#[test]
fn secret_group_entropy_and_window_are_sane() {
    for l in &load() {
        let r = &l.rule;
        if let Some(g) = r.secret_group {
            assert!(
                g >= 1 && g < l.re.captures_len(),
                "{}: secret_group {g} out of range",
                r.id
            );
        }
        if let Some(e) = r.entropy {
            assert!(e > 0.0 && e <= 8.0, "{}: entropy {e} out of range", r.id);
        }
        if let Some(w) = r.window {
            assert!(
                (64..=65_536).contains(&w),
                "{}: window {w} out of range",
                r.id
            );
        }
    }
}

#[test]
fn keywords_are_distinctive() {
    let rules = load();
    let prefixless: Vec<&str> = rules
        .iter()
        .filter(|l| l.rule.keywords.is_empty())
        .map(|l| l.rule.id.as_str())
        .collect();
    assert!(PREFIXLESS_ALLOWLIST.len() <= 5);
    for id in &prefixless {
        assert!(
            PREFIXLESS_ALLOWLIST.contains(id),
            "{id}: no keywords and not allowlisted"
        );
    }
    let mut distinct = BTreeSet::new();
    for l in &rules {
        for k in &l.rule.keywords {
            assert!(k.len() >= 3, "{}: keyword {k:?} shorter than 3", l.rule.id);
            let lower = k.trim().to_ascii_lowercase();
            assert!(
                !WEAK_KEYWORDS.contains(&lower.as_str()),
                "{}: weak keyword {k:?}",
                l.rule.id
            );
            distinct.insert(k.as_str());
        }
    }
    println!("{} distinct keywords", distinct.len());
}

#[test]
fn every_example_matches_with_a_keyword_inside_the_window() {
    let mut errors = Vec::new();
    for l in &load() {
        let r = &l.rule;
        if r.examples.is_empty() {
            errors.push(format!("{}: no examples", r.id));
        }
        let window = r.window.unwrap_or(DEFAULT_WINDOW);
        for ex in &r.examples {
            let found = hits(l, ex);
            if found.is_empty() {
                errors.push(format!("{}: example does not match: {ex:?}", r.id));
            }
            if found.len() != hits_bytes(l, ex) {
                errors.push(format!("{}: bytes/ASCII regex disagrees on {ex:?}", r.id));
            }
            for (whole, _) in found {
                if whole.len() > window {
                    errors.push(format!(
                        "{}: match of {} bytes exceeds window {window}",
                        r.id,
                        whole.len()
                    ));
                }
                if !r.keywords.is_empty() && !r.keywords.iter().any(|k| holds(r, whole, k)) {
                    errors.push(format!("{}: match {whole:?} holds no keyword", r.id));
                }
            }
        }
        for k in &r.keywords {
            let exercised = r
                .examples
                .iter()
                .any(|ex| hits(l, ex).iter().any(|(whole, _)| holds(r, whole, k)));
            if !exercised {
                errors.push(format!(
                    "{}: keyword {k:?} is not exercised by any example",
                    r.id
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn no_negative_matches() {
    let mut errors = Vec::new();
    for l in &load() {
        let r = &l.rule;
        if r.negatives.is_empty() {
            errors.push(format!("{}: no negatives", r.id));
        }
        for neg in &r.negatives {
            if let Some((whole, _)) = hits(l, neg).first() {
                errors.push(format!("{}: negative matches {whole:?}", r.id));
            } else if hits_bytes(l, neg) != 0 {
                errors.push(format!("{}: bytes regex matches negative {neg:?}", r.id));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn test_and_sandbox_keys_are_low_severity() {
    for l in &load() {
        let id = &l.rule.id;
        if id.contains("-test-") || id.ends_with("-test") || id.contains("sandbox") {
            assert_eq!(l.rule.severity, Severity::Low, "{id}");
        }
        if l.rule.severity == Severity::Low {
            continue;
        }
        assert!(
            matches!(
                l.rule.severity,
                Severity::Medium | Severity::High | Severity::Critical
            ),
            "{id}"
        );
    }
}

/// Text seen in normal agent traffic that no rule may flag (regex + entropy alone, no placeholder filter).
fn clean_corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        // ids and hashes
        "550e8400-e29b-41d4-a716-446655440000",
        "{\"request_id\": \"req_011CSHmZ9J2XU5dqRo3mVvLB\", \"uuid\": \"6f1c2b9e-1d4a-4c7e-9f3b-2a8d5e7c0b11\"}",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "\"integrity\": \"sha512-3aDvgjEE3WrWDWDtPjcqJ0mUQbQh7nI2dk+fE8BhY5x3k1bP2m+UgQ8F0p9u0JkCwX6Q6R2J1v0T4X7y9nA1Bw==\"",
        "FROM node:20@sha256:a1f3c2e4b5d6978877665544332211ffeeddccbbaa99887766554433221100aa",
        "git rev-parse HEAD => 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        // images and certificates
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2hhbmdlbWUtY2VydC1zZXJpYWwwCgYIKoZIzj0EAwIw\nEjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNDAxMDEwMDAwMDBaFw0zNDAxMDEwMDAw\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEc2hhcmVkLXB1YmxpYy1rZXktbm90\nLWEtc2VjcmV0LWF0LWFsbC1qdXN0LWZvci10ZXN0cw==\n-----END PUBLIC KEY-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1aWxkLWhvc3Qta2V5LWZvci1jaS1ydW5uZXJzLTAx ci@build",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDR3kq8x5mV2nYp9H0cF7uJtW4sL1aZbQ6gE8oK3iM dev@laptop",
        // placeholders that fail on shape alone
        "OPENAI_API_KEY=<YOUR_KEY>",
        "ANTHROPIC_API_KEY=${ANTHROPIC_API_KEY}",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxx",
        "export AWS_SECRET_ACCESS_KEY=\"$AWS_SECRET\"",
        "postgres://user:password@localhost:5432/db",
        "Authorization: Bearer {{token}}",
        // prose
        "Choose a strong password combination and never share your secret key or API token with anyone.",
        "The sk-ant prefix identifies Anthropic keys; ghp_ identifies GitHub classic tokens.",
        "Use https://docs.example.com/en-us/guide and http://localhost:3000/api/v1/users?id=42 for testing.",
        // source code
        "fn main() { let key = std::env::var(\"API_KEY\").unwrap_or_default(); println!(\"{}\", key.len()); }",
        "const token = req.headers['authorization']?.split(' ')[1]; if (!token) return res.status(401).end();",
        "password = getpass.getpass(\"Password: \")\nconn = psycopg2.connect(host=host, user=user, password=password)",
        "from huggingface_hub import hf_hub_download\nimport ssl, re\nre_match = re.compile(r'^[A-Za-z0-9_]+$')",
        "if err := json.NewDecoder(r.Body).Decode(&secret_key_config); err != nil { return err }",
        // minified JS
        "!function(e,t){\"object\"==typeof exports&&\"undefined\"!=typeof module?module.exports=t():\"function\"==typeof define&&define.amd?define(t):(e=e||self).Vue=t()}(this,function(){\"use strict\";var e=Object.freeze({});function t(e){return null==e}",
        "var a=\"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\",b=a.split(\"\"),c=function(d){return d.replace(/[^A-Za-z0-9\\+\\/\\=]/g,\"\")};",
        // LLM request JSON
        "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Summarize https://en.wikipedia.org/wiki/Rust_(programming_language)\"}]}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A long base64 blob (deterministic pseudo-random bytes) as in an image upload.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..48 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    v.push(format!(
        "{{\"type\":\"image\",\"source\":{{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"{}\"}}}}",
        base64_encode(&bytes)
    ));
    v
}

fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn clean_corpus_raises_nothing() {
    let rules = load();
    let mut failures = Vec::new();
    for text in clean_corpus() {
        for l in &rules {
            if let Some((whole, _)) = hits(l, &text).first() {
                failures.push(format!("{} flags {:?}", l.rule.id, whole));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

/// The same corpus through the whole engine, decoders included (escapes, base64 at every
/// alignment, hex), as the proxy scans a request body: the image's base64 decodes to noise,
/// the integrity string and the hashes decode to bytes that must not match anything either.
#[test]
fn clean_corpus_raises_nothing_through_the_engine() {
    let engine = dlp_rules::Engine::builtin().unwrap();
    let mut failures = Vec::new();
    for text in clean_corpus() {
        for f in engine.scan_bytes(text.as_bytes(), false, dlp_rules::Location::Body) {
            let head: String = text.chars().take(60).collect();
            failures.push(format!("{} ({}) on {head:?}", f.rule_id, f.encoding));
        }
    }
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

/// `false_positives.txt` holds shapes that only the engine's shared placeholder filter (or its list of
/// known public values) clears; the engine's end-to-end test checks them. Here: each line must really
/// need that filter, i.e. some rule matches it on regex and entropy alone.
#[test]
fn false_positives_file_lists_filter_dependent_cases() {
    let text = std::fs::read_to_string(rules_dir().join("false_positives.txt")).unwrap();
    let rules = load();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!lines.is_empty());
    for line in lines {
        assert!(
            rules.iter().any(|l| !hits(l, line).is_empty()),
            "no rule matches {line:?}: it belongs in a rule's negatives instead"
        );
    }
}
