//! The CLI without Docker: `--dry-run` plans, confirmation, and manifest errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use support::*;

const BOTTLE: &str = "---\negress:\n  allowlist:\n    - registry.npmjs.org\ncred_proxy:\n  routes:\n    - path: /anthropic/\n      upstream: https://api.anthropic.com\n      auth_scheme: Bearer\n      token_ref: CB_CLI_TEST_TOKEN\n      role: anthropic-base-url\n---\n";
const AGENT: &str = "---\nbottle: test\ndescription: \"a tester\"\n---\nYou test.\n";

#[test]
fn dry_run_prints_the_plan_and_never_a_token_value() {
    let home = Home::new(BOTTLE, AGENT);
    let secret = format!("sk-ant-oat01-{}", unique("dryrunsecret"));
    let out = home.run(
        &["start", "tester", "--dry-run"],
        &[("CB_CLI_TEST_TOKEN", &secret)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains(&secret), "token value in the plan");
    assert!(!stderr(&out).contains(&secret));
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(plan["agent"], "tester");
    assert_eq!(plan["bottle"], "test");
    let allow: Vec<&str> = plan["allowlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        allow,
        vec![
            "api.anthropic.com",
            "registry.npmjs.org",
            "statsig.anthropic.com"
        ]
    );
    assert_eq!(plan["routes"][0]["token_ref"], "CB_CLI_TEST_TOKEN");
    assert_eq!(plan["routes"][0]["roles"][0], "anthropic-base-url");
    assert_eq!(plan["routes"][0]["token_set"], true);
    let env: Vec<&str> = plan["env_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in [
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "HTTPS_PROXY",
        "NODE_EXTRA_CA_CERTS",
    ] {
        assert!(env.contains(&name), "{name} missing from {env:?}");
    }
    assert!(plan["images"]["sidecar"]
        .as_str()
        .unwrap()
        .starts_with("claude-bottle/egress-proxy:"));
    assert!(plan["networks"]["internal"]
        .as_str()
        .unwrap()
        .ends_with("-internal"));
    assert!(home.leftover_tmp().is_empty());
}

#[test]
fn without_a_terminal_and_without_yes_nothing_starts() {
    let home = Home::new(BOTTLE, AGENT);
    let out = home.run(&["start", "tester"], &[("CB_CLI_TEST_TOKEN", "x")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("api.anthropic.com"),
        "no preflight summary: {}",
        stderr(&out)
    );
}

#[test]
fn missing_token_env_fails_before_anything_is_created() {
    let home = Home::new(BOTTLE, AGENT);
    let out = home.run(&["start", "tester", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("$CB_CLI_TEST_TOKEN"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn manifest_errors_name_file_and_line() {
    let home = Home::new("---\nenv:\n  DEBUG: yes\n---\n", AGENT);
    let out = home.run(&["start", "tester", "--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("test.md:3") && err.contains("quote it"),
        "{err}"
    );
}

#[test]
fn unknown_agent_is_named() {
    let home = Home::new(BOTTLE, AGENT);
    let out = home.run(&["start", "nobody", "--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("no agent named `nobody`"),
        "{}",
        stderr(&out)
    );
}
