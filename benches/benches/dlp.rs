//! DLP engine throughput on 1 MiB request bodies with the full embedded rule set.
//! Run: cargo bench -p benches --bench dlp -- --warm-up-time 1 --measurement-time 3
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dlp_rules::{BodyContext, Engine, Finding};

/// The proxy's allocator (see proxy/src/main.rs), so the numbers are the proxy's: with glibc
/// malloc the scan's large per-round buffers go back to the kernel and page-fault on reuse.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SIZE: usize = 1 << 20;
const CHUNK: usize = 64 << 10;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next() as usize % xs.len()]
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "was",
    "on",
    "be",
    "at",
    "by",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "but",
    "not",
    "what",
    "all",
    "were",
    "when",
    "we",
    "there",
    "can",
    "an",
    "your",
    "which",
    "their",
    "said",
    "if",
    "do",
    "will",
    "each",
    "about",
    "how",
    "up",
    "out",
    "them",
    "then",
    "function",
    "request",
    "response",
    "error",
    "config",
    "server",
    "client",
    "token",
    "password",
    "database",
    "implement",
    "refactor",
    "performance",
    "because",
    "should",
    "please",
    "update",
    "tests",
    "failing",
    "build",
];

const CODE: &[&str] = &[
    "fn handle(req: Request<Body>) -> Result<Response<Body>, Error> {\n    let cfg = Config::load(&path)?;\n",
    "    for (i, item) in items.iter().enumerate() {\n        if item.is_empty() { continue; }\n",
    "import os\nimport json\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n",
    "const client = new Client({ baseURL: process.env.API_URL, timeout: 30_000 });\n",
    "    assert_eq!(parse(\"a=1&b=2\").unwrap().len(), 2, \"two pairs\");\n",
    "SELECT id, name, created_at FROM users WHERE org_id = $1 ORDER BY created_at DESC LIMIT 50;\n",
    "    \"dependencies\": { \"serde\": \"1.0.210\", \"tokio\": { \"version\": \"1\", \"features\": [\"full\"] } }\n",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: Dev <dev@example.com>\n",
    "    let id = Uuid::parse_str(\"550e8400-e29b-41d4-a716-446655440000\")?;\n",
    "https://github.com/rust-lang/regex/blob/master/src/lib.rs#L120\n",
];

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

fn prose(r: &mut Lcg, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        s.push_str(r.pick(WORDS));
        s.push(if i % 17 == 16 { '.' } else { ' ' });
    }
    s
}

/// A Messages-API-like request: alternating turns of prose and code blocks, JSON-escaped.
fn llm_json() -> Vec<u8> {
    let mut r = Lcg(1);
    let mut s = String::from("{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8192,\"stream\":true,\"system\":\"You are a coding agent.\",\"messages\":[");
    let mut turn = 0;
    while s.len() < SIZE - 4096 {
        let mut content = prose(&mut r, 60);
        content.push_str("\n```\n");
        for _ in 0..(r.next() % 8) {
            content.push_str(r.pick(CODE));
        }
        content.push_str("```\n");
        content.push_str(&prose(&mut r, 40));
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        s.push_str(&format!(
            "{{\"role\":\"{role}\",\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}},",
            json_escape(&content)
        ));
        turn += 1;
    }
    s.push_str("{\"role\":\"user\",\"content\":\"done\"}]}");
    s.into_bytes()
}

fn source_code() -> Vec<u8> {
    let mut r = Lcg(2);
    let mut s = String::new();
    while s.len() < SIZE {
        s.push_str(r.pick(CODE));
        if r.next() & 3 == 0 {
            s.push_str(&format!("    // {}\n", prose(&mut r, 12)));
        }
    }
    s.into_bytes()
}

fn base64_blob() -> Vec<u8> {
    use base64_like::encode;
    let mut r = Lcg(3);
    let raw: Vec<u8> = (0..SIZE * 3 / 4 - 100).map(|_| r.next() as u8).collect();
    format!("{{\"type\":\"image\",\"source\":{{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"{}\"}}}}", encode(&raw)).into_bytes()
}

/// Standard base64 without pulling a dependency into the bench crate.
mod base64_like {
    pub fn encode(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(data.len() * 4 / 3 + 4);
        for c in data.chunks(3) {
            let n = u32::from(c[0]) << 16
                | u32::from(*c.get(1).unwrap_or(&0)) << 8
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= c.len() {
                    out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn scan(engine: &Arc<Engine>, ctx: &BodyContext, body: &[u8]) -> Vec<Finding> {
    let mut sc = engine.body_scanner(ctx.clone()).unwrap();
    let mut f = Vec::new();
    for c in body.chunks(CHUNK) {
        f.extend(sc.feed(c).unwrap().findings);
    }
    f.extend(sc.finish().unwrap().findings);
    f
}

fn bench(c: &mut Criterion) {
    let engine = Arc::new(Engine::builtin().unwrap());
    let json = llm_json();
    let mut with_secret = json.clone();
    let at = with_secret.len() - 1024;
    let token = dlp_rules::github_token_with_checksum("ghp", "Xk2LmQ9pR7sT4vW8yZ1bC3dF5gH6jN");
    with_secret.splice(at..at, format!(" token {token} ").into_bytes());
    let plain = BodyContext::body().with_content_type("application/json");
    let cases: Vec<(&str, Vec<u8>, BodyContext, usize, bool)> = vec![
        (
            "clean_llm_json",
            json.clone(),
            plain.clone(),
            json.len(),
            false,
        ),
        (
            "source_code",
            source_code(),
            BodyContext::body(),
            SIZE,
            false,
        ),
        ("base64_blob", base64_blob(), plain.clone(), SIZE, false),
        (
            "gzip_llm_json",
            gzip(&json),
            plain.clone().with_content_encoding("gzip"),
            json.len(),
            false,
        ),
        (
            "secret_near_end",
            with_secret.clone(),
            plain.clone(),
            with_secret.len(),
            true,
        ),
    ];
    let mut g = c.benchmark_group("dlp");
    for (name, body, ctx, decoded_len, expect) in &cases {
        let found = scan(&engine, ctx, body);
        assert_eq!(!found.is_empty(), *expect, "{name}: {found:?}");
        // Throughput counts decoded bytes, so the gzip case is comparable with the others.
        g.throughput(Throughput::Bytes(*decoded_len as u64));
        g.bench_function(*name, |b| b.iter(|| scan(&engine, ctx, body)));
    }
    // The proxy's configuration: the same rules plus the credentials it injects, whose literals
    // are also matched on the raw bytes of every escaped view.
    let known = Arc::new(
        Engine::builtin()
            .unwrap()
            .with_known_secrets(
                [
                    "sk-ant-oat01-Qm9vbXBsYWNlaG9sZGVy",
                    "ghp_Xk2LmQ9pR7sT4vW8yZ1bC3dF5gH6jN0a",
                    "btl-e2e-9xQ2+vK7/wR4=mZ8pL3nT6yH1qJ5",
                ]
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    dlp_rules::KnownSecret::new(format!("K{i}"), dlp_rules::SecretString::from(*v))
                })
                .collect(),
            )
            .unwrap(),
    );
    assert!(scan(&known, &plain, &json).is_empty());
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("clean_llm_json_known_secrets", |b| {
        b.iter(|| scan(&known, &plain, &json))
    });
    g.finish();
    let url = "/v1/messages?beta=true&anthropic-version=2023-06-01&q=how+do+I+configure+the+proxy";
    let mut g = c.benchmark_group("dlp_small");
    g.bench_function("scan_url", |b| b.iter(|| engine.scan_url(url)));
    g.bench_function("scan_header", |b| {
        b.iter(|| engine.scan_header("user-agent", b"claude-cli/2.0.14 (external, cli)"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
