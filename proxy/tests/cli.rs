//! The CLI contract: `ca init`, `check`, and `run` with no config.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ca_init_writes_a_constrained_p256_ca_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["ca", "init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_mode = std::fs::metadata(dir.path().join("ca.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.path().join("ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
}

#[test]
fn check_prints_the_resolved_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n[egress]\nallow = [\"Example.COM.\", \"*.example.org\"]\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("example.com"), "normalised: {text}");
    assert!(text.contains("example.org"), "{text}");
}

#[test]
fn check_rejects_a_typo_with_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n[egress]\nalow = [\"example.com\"]\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alow") && err.contains("allow"), "{err}");
}

#[test]
fn check_rejects_too_broad_wildcards() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    for entry in ["*", "*.com"] {
        std::fs::write(
            &cfg,
            format!("listen = \"127.0.0.1:0\"\n[egress]\nallow = [\"{entry}\"]\n"),
        )
        .unwrap();
        let out = Command::new(common::bin())
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{entry} accepted");
    }
}

/// With no config, `run` serves an embedded default and says how to use it.
#[test]
fn run_without_config_prints_how_to_use_it() {
    let mut child = Command::new(common::bin())
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_proxy = false;
    let mut saw_ca = false;
    let mut saw_ready_or_bind_error = false;
    while Instant::now() < deadline && !(saw_proxy && saw_ca && saw_ready_or_bind_error) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            saw_proxy |= line.contains("HTTPS_PROXY=http://127.0.0.1:3128");
            saw_ca |= line.contains("ca.pem");
            // Port 3128 may be taken on a shared machine; the banner is what this test checks.
            saw_ready_or_bind_error |= line.contains("\"ready\"") || line.contains("cannot listen");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        saw_proxy && saw_ca && saw_ready_or_bind_error,
        "proxy={saw_proxy} ca={saw_ca} ready={saw_ready_or_bind_error}"
    );
}
