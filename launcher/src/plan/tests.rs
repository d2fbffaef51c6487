use std::fs;

use super::*;
use crate::manifest::Catalog;

const BOTTLE: &str = r#"---
env:
  EDITOR: vim
egress:
  allowlist:
    - registry.npmjs.org
    - API.Anthropic.com
    - "*.example.org"
cred_proxy:
  routes:
    - path: /anthropic/
      upstream: https://api.anthropic.com
      auth_scheme: Bearer
      token_ref: PLAN_TEST_OAUTH_TOKEN
      role: anthropic-base-url
    - path: /npm/
      upstream: https://npm.internal.example:8443
      auth_scheme: Bearer
      token_ref: PLAN_TEST_NPM_TOKEN
      role: npm-registry
    - path: /gitea/
      upstream: https://gitea.example.com
      auth_scheme: token
      token_ref: PLAN_TEST_GITEA
      role: [git-insteadof, tea-login]
git:
  - Name: origin
    Upstream: git@github.com:me/repo.git
    IdentityFile: ~/.ssh/id
    KnownHostKey: "github.com ssh-ed25519 AAAA"
    ExtraHosts:
      git.internal: 100.64.0.7
git_user:
  name: "Ada \"A\" Lovelace"
  email: ada@example.com
---
"#;

fn resolved() -> (tempfile::TempDir, crate::manifest::Resolved) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir_all(home.join("bottles")).unwrap();
    fs::create_dir_all(home.join("agents")).unwrap();
    fs::write(home.join("bottles/dev.md"), BOTTLE).unwrap();
    fs::write(
        home.join("agents/coder.md"),
        "---\nbottle: dev\nskills: [review]\n---\nYou write code.\n",
    )
    .unwrap();
    let r = Catalog::discover(&home, dir.path())
        .resolve("coder")
        .unwrap();
    (dir, r)
}

fn plan() -> Plan {
    let (_d, r) = resolved();
    build(
        &r,
        "coder-0000abcd",
        "claude-bottle/egress-proxy:test",
        &Options::default(),
    )
}

#[test]
fn allowlist_is_defaults_union_bottle_union_routes_sorted_deduped() {
    let p = plan();
    assert_eq!(
        p.allowlist,
        vec![
            "*.example.org",
            "api.anthropic.com",
            "gitea.example.com",
            "npm.internal.example:8443",
            "registry.npmjs.org",
            "statsig.anthropic.com",
        ]
    );
}

#[test]
fn env_names_cover_proxy_ca_and_roles() {
    let p = plan();
    for name in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "https_proxy",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "CODEX_CA_CERTIFICATE",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "EDITOR",
    ] {
        assert!(p.env_names.iter().any(|n| n == name), "missing {name}");
    }
    let env: std::collections::HashMap<_, _> = p.agent_env.iter().cloned().collect();
    assert_eq!(env["HTTPS_PROXY"], "http://egress:3128");
    assert_eq!(
        env["ANTHROPIC_BASE_URL"],
        "http://cred-proxy:9099/anthropic"
    );
    assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], PLACEHOLDER_TOKEN);
    assert_eq!(env["SSL_CERT_FILE"], CA_PATH_IN_AGENT);
    assert!(env["NO_PROXY"].contains("cred-proxy"));
}

#[test]
fn no_anthropic_route_means_no_placeholder() {
    let (_d, mut r) = resolved();
    r.bottle.routes.retain(|route| route.path != "/anthropic/");
    let p = build(&r, "x-1", "img", &Options::default());
    assert!(!p.env_names.iter().any(|n| n == "ANTHROPIC_BASE_URL"));
    assert!(!p.env_names.iter().any(|n| n == "CLAUDE_CODE_OAUTH_TOKEN"));
}

#[test]
fn role_files_are_written() {
    let p = plan();
    let file = |suffix: &str| {
        p.agent_files
            .iter()
            .find(|f| f.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix}"))
            .contents
            .clone()
    };
    assert_eq!(file("/.npmrc"), "registry=http://cred-proxy:9099/npm/\n");
    let git = file("/.gitconfig");
    assert!(
        git.contains(
            "[url \"http://cred-proxy:9099/gitea/\"]\n\tinsteadOf = https://gitea.example.com/\n"
        ),
        "{git}"
    );
    assert!(git.contains("name = \"Ada \\\"A\\\" Lovelace\""), "{git}");
    let tea = file("/.config/tea/config.yml");
    assert!(
        tea.contains("url: \"http://cred-proxy:9099/gitea\""),
        "{tea}"
    );
    assert!(tea.contains(PLACEHOLDER_TOKEN));
}

#[test]
fn proxy_config_is_the_issue_contract() {
    let p = plan();
    let v: toml::Value = toml::from_str(&p.proxy_config).unwrap();
    assert_eq!(v["listen"].as_str(), Some("0.0.0.0:3128"));
    assert_eq!(v["routes_listen"].as_str(), Some("0.0.0.0:9099"));
    assert_eq!(v["ca"]["cert"].as_str(), Some(SIDECAR_CA_CERT));
    let allow = v["egress"]["allow"].as_array().unwrap();
    assert_eq!(allow.len(), p.allowlist.len());
    assert_eq!(
        v["upstream"]["hosts"]["git.internal"].as_str(),
        Some("100.64.0.7")
    );
    let routes = v["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 3);
    assert_eq!(
        routes[0]["token_file"].as_str(),
        Some("/run/bottle-secrets/PLAN_TEST_OAUTH_TOKEN")
    );
    assert_eq!(routes[0]["path"].as_str(), Some("/anthropic/"));
    let keys: Vec<&String> = routes[0].as_table().unwrap().keys().collect();
    assert_eq!(keys, vec!["auth_scheme", "path", "token_file", "upstream"]);
}

/// `[clients]` is appended after the `[[routes]]` tables; the whole stays one valid document.
#[test]
fn clients_table_appends_to_the_config() {
    let p = plan();
    let allow = ["172.20.0.0/16".parse().unwrap()];
    let deny = ["172.20.0.1/32".parse().unwrap()];
    let text = format!("{}\n{}", p.proxy_config, clients_toml(&allow, &deny));
    let v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(v["clients"]["allow"][0].as_str(), Some("172.20.0.0/16"));
    assert_eq!(v["clients"]["deny"][0].as_str(), Some("172.20.0.1/32"));
    assert_eq!(v["routes"].as_array().unwrap().len(), 3);
}

#[test]
fn plan_json_has_the_documented_fields_and_no_internal_ones() {
    let p = plan();
    let v = serde_json::to_value(&p).unwrap();
    for key in [
        "agent",
        "bottle",
        "allowlist",
        "routes",
        "env_names",
        "images",
        "networks",
        "git",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for hidden in ["agent_env", "agent_files", "proxy_config"] {
        assert!(
            v.get(hidden).is_none(),
            "{hidden} leaked into the plan JSON"
        );
    }
    assert_eq!(v["routes"][0]["roles"][0], "anthropic-base-url");
    assert_eq!(
        v["networks"]["internal"],
        "claude-bottle-coder-0000abcd-internal"
    );
    assert_eq!(v["git"][0]["name"], "origin");
    assert_eq!(v["labels"][0][0], LABEL_BOTTLE);
}

#[test]
fn command_override_is_non_interactive() {
    let (_d, r) = resolved();
    let opts = Options {
        command: Some(vec!["printenv".into()]),
        ..Options::default()
    };
    let p = build(&r, "x-1", "img", &opts);
    assert_eq!(p.command, vec!["printenv"]);
    assert!(!p.interactive);
    let p = build(&r, "x-1", "img", &Options::default());
    assert_eq!(
        p.command,
        vec!["claude", "--append-system-prompt", "You write code."]
    );
    assert!(p.interactive);
}

#[test]
fn ids_are_fresh() {
    assert_ne!(new_id("a"), new_id("a"));
    assert!(new_id("agent").starts_with("agent-"));
}
