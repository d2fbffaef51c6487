//! Times the engine over a file, for benches/dlp_peers.py. Prints one line:
//! `engine=<name> bytes=<n> secs=<s> mbps=<MB/s> findings=<n> rules=<n>` (secs: median pass).
//!   scan_bench FILE [--iters N] [--naive] [--oneshot] [--known] [--core] [--without RULE,RULE]
//! By default the file is fed to a `BodyScanner` in 64 KiB chunks, as the proxy feeds a body
//! (streaming rounds and their overlap included); `--oneshot` scans it as one view instead.
//! `--naive` runs every rule regex as one `regex::bytes::RegexSet` over the whole file instead
//! (the design the prefilter replaces), counting matching rules. `--core` (a build with feature
//! `bench-knobs`) runs the engine without its decoders: the matching core alone, over raw bytes.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Instant;

/// The proxy's allocator (see proxy/src/main.rs), so the numbers are the proxy's: with glibc
/// malloc the scan's large per-round buffers go back to the kernel and page-fault on reuse.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or(
        "usage: scan_bench FILE [--iters N] [--naive] [--oneshot] [--known] [--core] [--without RULE,RULE]",
    )?;
    let iters: usize = match args.iter().position(|a| a == "--iters") {
        Some(i) => args.get(i + 1).ok_or("--iters N")?.parse()?,
        None => 10,
    };
    let naive = args.iter().any(|a| a == "--naive");
    let data = std::fs::read(path)?;
    let mut engine = dlp_rules::Engine::builtin()?;
    if let Some(i) = args.iter().position(|a| a == "--without") {
        let ids: Vec<&str> = args
            .get(i + 1)
            .ok_or("--without ID,ID")?
            .split(',')
            .collect();
        engine = engine.without_rules(&ids)?;
    }
    // `--known`: the proxy's configuration, three injected credentials as known secrets (the
    // same values as the criterion bench's `clean_llm_json_known_secrets`).
    if args.iter().any(|a| a == "--known") {
        let values = [
            "sk-ant-oat01-Qm9vbXBsYWNlaG9sZGVy",
            "ghp_Xk2LmQ9pR7sT4vW8yZ1bC3dF5gH6jN0a",
            "btl-e2e-9xQ2+vK7/wR4=mZ8pL3nT6yH1qJ5",
        ];
        engine = engine.with_known_secrets(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    dlp_rules::KnownSecret::new(format!("K{i}"), dlp_rules::SecretString::from(*v))
                })
                .collect(),
        )?;
    }
    // Last: `with_known_secrets` and `without_rules` build an engine with its decoders on.
    if args.iter().any(|a| a == "--core") {
        #[cfg(feature = "bench-knobs")]
        {
            engine = engine.matching_core_only();
        }
        #[cfg(not(feature = "bench-knobs"))]
        return Err("--core needs a build with --features bench-knobs".into());
    }
    let engine = Arc::new(engine);
    let rules = engine.rules().count();
    let (name, secs, findings) = if naive {
        let t0 = Instant::now();
        let pats: Vec<String> = engine.rules().map(|r| r.regex.clone()).collect();
        let set = regex::bytes::RegexSetBuilder::new(&pats)
            .size_limit(1 << 30)
            .dfa_size_limit(1 << 30)
            .build()?;
        eprintln!("RegexSet compiled in {:.2}s", t0.elapsed().as_secs_f64());
        let mut n = 0;
        let t = Instant::now();
        for _ in 0..iters {
            n = set.matches(&data).iter().count();
        }
        ("regexset", t.elapsed().as_secs_f64() / iters as f64, n)
    } else {
        // One warm-up pass (rules compile their regex on first use), then the median of timed
        // passes: robust to the neighbours of a shared VM, and what dlp_peers.py reports for
        // Hyperscan too.
        // `--oneshot`: the whole file as one view (no streaming rounds, no overlap re-scan).
        let oneshot = args.iter().any(|a| a == "--oneshot");
        let scan = |data: &[u8]| -> Result<usize, Box<dyn std::error::Error>> {
            Ok(if oneshot {
                engine
                    .scan_bytes(data, false, dlp_rules::Location::Body)
                    .len()
            } else {
                // The proxy's path: body chunks handed to a `BodyScanner` as they arrive (64 KiB
                // here, like the criterion bench), no copy before the scanner's own.
                let mut sc = engine.body_scanner(dlp_rules::BodyContext::body())?;
                let mut n = 0;
                for chunk in data.chunks(64 << 10) {
                    n += sc.feed(chunk)?.findings.len();
                }
                n + sc.finish()?.findings.len()
            })
        };
        let mut n = scan(&data)?;
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters.max(1) {
            let t = Instant::now();
            n = scan(&data)?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        ("dlp-engine", times[times.len() / 2], n)
    };
    println!(
        "engine={name} bytes={} secs={secs:.6} mbps={:.1} findings={findings} rules={rules}",
        data.len(),
        data.len() as f64 / secs / 1e6
    );
    Ok(())
}
