//! The `ProxyProcess` fixture: against a stand-in script (always), and a
//! smoke run of the real `egress-proxy` when it has been built.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::{egress_proxy_bin, ProxyCa, ProxyProcess};

/// A shell stand-in speaking the proxy's process contract (ca init, ready
/// event on stderr, audit on stdout, SIGTERM), to test the fixture itself.
const STAND_IN: &str = r#"#!/bin/sh
if [ "$1" = ca ] && [ "$2" = init ]; then
  echo cert > "$4/ca.pem"; echo key > "$4/ca.key"; exit 0
fi
if grep -q fail "$3"; then echo '{"message":"bad config"}' >&2; exit 2; fi
echo '{"level":"INFO","message":"starting"}' >&2
echo '{"timestamp":"t","level":"INFO","message":"ready","listen":"127.0.0.1:3128","admin_listen":"127.0.0.1:9090","routes_listen":""}' >&2
echo '{"decision":"allow","host":"example.com","token_env":"'"$SECRET_ENV"'"}'
trap 'echo "{\"message\":\"shutting down\"}" >&2; exit 0' TERM
while :; do sleep 0.05; done
"#;

fn stand_in(dir: &Path) -> PathBuf {
    let bin = dir.join("fake-proxy");
    std::fs::write(&bin, STAND_IN).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn process_fixture_reads_ready_audit_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in(dir.path());
    let ca = ProxyCa::init(&bin).unwrap();
    assert!(ca.config_section().contains("ca.pem"));
    let config = format!("listen = \"127.0.0.1:0\"\n{}", ca.config_section());
    let mut p = ProxyProcess::start(&bin, &config, &[("SECRET_ENV", "from-env")]).unwrap();
    assert_eq!(p.proxy_url(), "http://127.0.0.1:3128");
    assert_eq!(p.admin_addr().unwrap().port(), 9090);
    assert_eq!(p.routes_addr(), None, "empty routes_listen means none");
    let audit = p
        .wait_audit(Duration::from_secs(5), |v| v["decision"] == "allow")
        .unwrap();
    assert_eq!(audit["token_env"], "from-env");
    assert!(p.all_output().contains("starting"));
    assert!(p.peak_rss_kib().unwrap() > 0);
    assert!(std::fs::read_to_string(p.dir().join("config.toml"))
        .unwrap()
        .contains("listen"));
    let (status, graceful) = p.stop().unwrap();
    assert!(graceful && status.success(), "{status:?}");
    assert!(p.all_output().contains("shutting down"));
}

#[test]
fn process_fixture_reports_early_exit_with_output() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_in(dir.path());
    let err = ProxyProcess::start(&bin, "fail = true\n", &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("exited") && msg.contains("bad config"),
        "{msg}"
    );
}

#[test]
fn bin_path_is_next_to_deps() {
    let bin = egress_proxy_bin();
    assert_eq!(bin.file_name().unwrap(), "egress-proxy");
    if std::env::var_os("EGRESS_PROXY_BIN").is_none() {
        assert!(
            !bin.parent().unwrap().ends_with("deps"),
            "{}",
            bin.display()
        );
    }
}
