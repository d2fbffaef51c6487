//! `egress-proxy scan`, the public CLI contract: exit 0 clean, 1 findings, 2 error; `--json`
//! prints one object per finding with at least `path` and `rule`; `-` is stdin; a `.gz` file is
//! decompressed; the secret itself is never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_egress-proxy")
}

/// A synthetic GitHub classic token (random alphabet, never a real one).
fn github_pat(seed: u64) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let tail: String = (0..36)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALNUM[(x % ALNUM.len() as u64) as usize] as char
        })
        .collect();
    format!("ghp_{tail}")
}

fn scan(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin())
        .arg("scan")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_string_lossy().into_owned()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn clean_file_exits_0_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clean = write(
        dir.path(),
        "clean.json",
        br#"{"model":"claude","messages":[{"role":"user","content":"hello"}]}"#,
    );
    let out = scan(&[&clean], None);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(out.stdout.is_empty());
    let out = scan(&["--json", &clean], None);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn findings_exit_1_name_the_rule_and_never_print_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = github_pat(1);
    let dirty = write(
        dir.path(),
        "env",
        format!("GITHUB_TOKEN={secret}\n").as_bytes(),
    );
    let clean = write(dir.path(), "notes.txt", b"nothing to see here\n");
    let out = scan(&[&clean, &dirty], None);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("github-pat") && printed.contains(&dirty),
        "{printed}"
    );
    assert!(!printed.contains(&clean), "{printed}");
    assert!(!printed.contains(&secret[4..]), "secret printed: {printed}");

    let out = scan(&["--json", &clean, &dirty], None);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["path"], dirty.as_str());
    assert_eq!(lines[0]["rule"], "github-pat");
    assert!(!text(&out).contains(&secret[4..]));
}

#[test]
fn dash_reads_stdin() {
    let secret = github_pat(2);
    let body = format!("{{\"token\":\"{secret}\"}}");
    let out = scan(&["--json", "-"], Some(body.as_bytes()));
    assert_eq!(code(&out), 1, "{}", text(&out));
    let lines = json_lines(&out);
    assert_eq!(lines[0]["path"], "-");
    assert_eq!(lines[0]["rule"], "github-pat");
    assert!(!text(&out).contains(&secret[4..]));
    let out = scan(&["-"], Some(b"clean input\n"));
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn gz_files_are_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = github_pat(3);
    // Compressible text around the token, so deflate codes it (tiny inputs are "stored" raw).
    let filler = "the agent reads a file and writes tests\n".repeat(50);
    let compressed = gzip(format!("{filler}export GITHUB_TOKEN={secret}\n{filler}").as_bytes());
    assert!(!compressed
        .windows(12)
        .any(|w| w == &secret.as_bytes()[4..16]));
    let gz = write(dir.path(), "env.gz", &compressed);
    let out = scan(&["--json", &gz], None);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let lines = json_lines(&out);
    assert_eq!(lines[0]["path"], gz.as_str());
    assert_eq!(lines[0]["rule"], "github-pat");
    assert!(!text(&out).contains(&secret[4..]));
    // The same bytes under another name are scanned as they are: nothing readable in them.
    let raw = write(dir.path(), "env.bin", &compressed);
    let out = scan(&[&raw], None);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let out = scan(&[&missing.to_string_lossy()], None);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("missing.txt"), "{}", text(&out));
    let corrupt = write(
        dir.path(),
        "broken.gz",
        b"\x1f\x8b\x08\x00not really gzip at all",
    );
    let out = scan(&[&corrupt], None);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = scan(&[], None);
    assert_eq!(code(&out), 2, "no path: {}", text(&out));
}

#[test]
fn a_large_file_is_streamed_and_a_secret_near_its_end_found() {
    let dir = tempfile::tempdir().unwrap();
    let secret = github_pat(4);
    let mut data: Vec<u8> = b"lorem ipsum dolor sit amet, consectetur adipiscing elit\n"
        .iter()
        .copied()
        .cycle()
        .take(24 << 20)
        .collect();
    data.extend_from_slice(format!("token={secret}\n").as_bytes());
    let big = write(dir.path(), "big.log", &data);
    let out = scan(&["--json", &big], None);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["rule"], "github-pat");
    assert!(
        lines[0]["offset"].as_u64().unwrap() >= 24 << 20,
        "{}",
        lines[0]
    );
    // Streamed, not read whole: the scan's peak RSS (Python's getrusage of its child, since
    // std has no portable one) stays below the file's size (measured: ~15 MB for 64 MiB).
    let probe = Command::new("python3")
        .arg("-c")
        .arg(
            "import resource,subprocess,sys\n\
             subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\n\
             print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        )
        .arg(bin())
        .args(["scan", &big])
        .output()
        .unwrap();
    let peak_kib: u64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        peak_kib < 24 << 10,
        "peak RSS {peak_kib} KiB for a 24 MiB file"
    );
}
