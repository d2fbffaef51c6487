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
    // Default validity 30 days: still valid in 29, expired within 31.
    let pem = dir.path().join("ca.pem");
    let valid_for = |days: u64| {
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-checkend",
                &(days * 86_400).to_string(),
                "-in",
            ])
            .arg(&pem)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(valid_for(29) && !valid_for(31));
    // A unique subject per CA (NSS and browsers key trust and caches on it).
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["ca", "init", "--dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let subject = |dir: &std::path::Path| {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(dir.join("ca.pem"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = (subject(dir.path()), subject(other.path()));
    assert!(a.starts_with("subject=") && a != b, "{a} / {b}");
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
fn run_without_config_serves_the_embedded_default() {
    let mut child = Command::new(common::bin())
        .args(["run", "--listen", "127.0.0.1:0"])
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
    let (mut proxy, mut ca) = (None, None);
    while Instant::now() < deadline && (proxy.is_none() || ca.is_none()) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(url) = line.trim().strip_prefix("export HTTPS_PROXY=http://") {
                proxy = url.parse::<std::net::SocketAddr>().ok();
            }
            if let Some(rest) = line.trim().strip_prefix("export SSL_CERT_FILE=") {
                ca = rest.split_whitespace().next().map(std::path::PathBuf::from);
            }
        }
    }
    let (Some(proxy), Some(ca)) = (proxy, ca.clone()) else {
        let _ = child.kill();
        panic!("no banner with the bound address and the CA: proxy={proxy:?} ca={ca:?}");
    };
    assert_ne!(proxy.port(), 0, "the banner must name the bound port");
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    // It serves: a host outside the embedded allowlist gets the policy's 403, which says how
    // to allow it.
    let (resp, _) =
        testkit::raw_connect(proxy, "not-allowed.example:443", Duration::from_secs(10)).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(
        resp.text().contains("not-allowed.example"),
        "{}",
        resp.text()
    );
}
