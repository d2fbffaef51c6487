//! `[clients]` in the config: parsed into normalized networks, strict about keys and values
//! like every other table, and shown by `egress-proxy check`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use egress_proxy::config::Config;

fn err(src: &str) -> String {
    Config::from_toml_str(src, Path::new("/"))
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn clients_parse_addresses_and_cidrs() {
    let src = "[clients]\nallow = [\"172.20.0.0/16\", \"10.0.0.7\", \"[fd00::]/8\"]\ndeny = [\"172.20.0.1/32\"]\n";
    let c = Config::from_toml_str(src, Path::new("/")).unwrap().clients;
    let allow: Vec<String> = c.allow.iter().map(ToString::to_string).collect();
    assert_eq!(allow, ["172.20.0.0/16", "10.0.0.7/32", "fd00::/8"]);
    assert_eq!(c.deny[0].to_string(), "172.20.0.1/32");
    let none = Config::from_toml_str("", Path::new("/")).unwrap().clients;
    assert!(none.allow.is_empty() && none.deny.is_empty());
}

#[test]
fn clients_are_strict() {
    assert_eq!(
        err("[clients]\nalow = []\n"),
        "unknown key \"clients.alow\" (did you mean \"allow\"?) at line 2"
    );
    assert_eq!(
        err("[clients]\nallow = [\"172.20.0.0/16\"]\ndeny = [\"gateway\"]\n"),
        "clients.deny[0]: \"gateway\" is not an IP address or CIDR at line 3"
    );
    assert!(err("[clients]\nallow = [\"172.20.0.1/16\"]").starts_with(
        "clients.allow[0]: \"172.20.0.1/16\" has host bits set; did you mean \"172.20.0.0/16\"?"
    ),);
    assert!(err("[clients]\nallow = [\"10.0.0.0/33\"]").contains("invalid CIDR prefix"));
    assert!(err("[clients]\nallow = \"10.0.0.0/8\"").starts_with("clients.allow"));
}

#[test]
fn check_prints_the_clients() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let run = |toml: &str| {
        std::fs::write(&cfg, toml).unwrap();
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run("[clients]\nallow = [\"172.20.0.0/16\"]\ndeny = [\"172.20.0.1\"]\n");
    assert!(
        text.contains("  allow: 172.20.0.0/16\n  deny: 172.20.0.1/32\n"),
        "{text}"
    );
    let text = run("[egress]\nallow = [\"example.com\"]\n");
    assert!(text.contains("allow: any peer"), "{text}");
}
