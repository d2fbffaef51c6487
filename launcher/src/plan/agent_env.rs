//! What the agent container sees: env vars and small config files. Everything here is wiring or a
//! placeholder: the agent talks to `egress:3128` and `cred-proxy:9099`, and the sidecar holds the
//! tokens. The role rewrites point each tool at its route instead of the real host.

use std::fmt::Write as _;

use crate::manifest::{Resolved, Role};

use super::{PROXY_PORT, ROUTES_PORT};

/// Home of the agent user in the shipped image and the stand-in images.
pub const AGENT_HOME: &str = "/home/agent";
/// Where the bottle CA certificate is installed in the agent.
pub const CA_PATH_IN_AGENT: &str = "/etc/claude-bottle/ca.pem";
/// What tools that insist on a token get. Not a secret: the proxy strips it and injects the real one.
pub const PLACEHOLDER_TOKEN: &str = "claude-bottle-placeholder";

/// Env vars that make every TLS stack in the agent trust the bottle CA.
pub const CA_ENV: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CODEX_CA_CERTIFICATE",
];

/// A file to place in the agent before it starts (path relative to `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFile {
    pub path: String,
    pub contents: String,
}

fn route_url(path: &str) -> String {
    format!("http://cred-proxy:{ROUTES_PORT}{path}")
}

/// The agent's environment, in a stable order.
pub fn env(resolved: &Resolved, id: &str) -> Vec<(String, String)> {
    let proxy = format!("http://egress:{PROXY_PORT}");
    let no_proxy = "localhost,127.0.0.1,::1,cred-proxy,git-gate,supervise".to_owned();
    let mut env: Vec<(String, String)> = Vec::new();
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        env.push((name.to_owned(), proxy.clone()));
    }
    env.push(("NO_PROXY".to_owned(), no_proxy.clone()));
    env.push(("no_proxy".to_owned(), no_proxy));
    for name in CA_ENV {
        env.push(((*name).to_owned(), CA_PATH_IN_AGENT.to_owned()));
    }
    env.push(("HOME".to_owned(), AGENT_HOME.to_owned()));
    env.push(("CLAUDE_BOTTLE".to_owned(), id.to_owned()));
    let routes = &resolved.bottle.routes;
    if let Some(route) = routes
        .iter()
        .find(|r| r.roles.contains(&Role::AnthropicBaseUrl))
    {
        let base = route_url(route.path.trim_end_matches('/'));
        env.push(("ANTHROPIC_BASE_URL".to_owned(), base));
        env.push((
            "CLAUDE_CODE_OAUTH_TOKEN".to_owned(),
            PLACEHOLDER_TOKEN.to_owned(),
        ));
    }
    for (k, v) in &resolved.bottle.env {
        if !env.iter().any(|(name, _)| name == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    env
}

/// Config files for the role rewrites and the git identity.
pub fn files(resolved: &Resolved) -> Vec<AgentFile> {
    let bottle = &resolved.bottle;
    let mut files = Vec::new();
    if let Some(route) = bottle
        .routes
        .iter()
        .find(|r| r.roles.contains(&Role::NpmRegistry))
    {
        files.push(AgentFile {
            path: format!("{AGENT_HOME}/.npmrc"),
            contents: format!("registry={}\n", route_url(&route.path)),
        });
    }
    let mut gitconfig = String::new();
    if let Some(user) = &bottle.git_user {
        let _ = writeln!(
            gitconfig,
            "[user]\n\tname = {}\n\temail = {}",
            git_quote(&user.name),
            git_quote(&user.email)
        );
    }
    for route in bottle
        .routes
        .iter()
        .filter(|r| r.roles.contains(&Role::GitInsteadof))
    {
        let upstream = route.upstream.trim_end_matches('/');
        let _ = writeln!(
            gitconfig,
            "[url \"{}\"]\n\tinsteadOf = {}/",
            route_url(&route.path),
            upstream
        );
    }
    if !gitconfig.is_empty() {
        files.push(AgentFile {
            path: format!("{AGENT_HOME}/.gitconfig"),
            contents: gitconfig,
        });
    }
    if let Some(route) = bottle
        .routes
        .iter()
        .find(|r| r.roles.contains(&Role::TeaLogin))
    {
        files.push(AgentFile {
            path: format!("{AGENT_HOME}/.config/tea/config.yml"),
            contents: format!(
                "logins:\n  - name: bottle\n    url: \"{}\"\n    token: \"{PLACEHOLDER_TOKEN}\"\n    default: true\n",
                route_url(route.path.trim_end_matches('/'))
            ),
        });
    }
    files
}

/// Quotes a value for a git config file (names may contain spaces or quotes).
fn git_quote(value: &str) -> String {
    let escaped: String = value
        .chars()
        .filter(|c| *c != '\n')
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
