//! The plan: everything `start` will create, computed from the manifests without touching Docker.
//! `--dry-run` prints it as JSON. It holds names of secrets (token_ref), never their values: the
//! token values are read from the host environment only when the sidecar container is created,
//! and reach it as private files (`/run/bottle-secrets/<token_ref>`), never as its environment.

mod agent_env;
mod proxy_config;

use serde::Serialize;

use crate::manifest::{rules, Resolved, Role};

pub use agent_env::{AgentFile, AGENT_HOME, CA_PATH_IN_AGENT, PLACEHOLDER_TOKEN};
pub use proxy_config::{
    clients_toml, proxy_config_toml, secret_path, upstream_ca_path, SIDECAR_CA_CERT,
    SIDECAR_CA_KEY, SIDECAR_CONFIG, SIDECAR_DIR, SIDECAR_SECRETS_DIR,
};

/// Hosts every bottle may reach: what Claude Code itself needs.
pub const DEFAULT_ALLOWLIST: &[&str] = &["api.anthropic.com", "statsig.anthropic.com"];
/// Network aliases of the sidecar, so the agent's URLs never change (seeds compatibility).
pub const SIDECAR_ALIASES: &[&str] = &["egress", "pipelock", "cred-proxy", "git-gate", "supervise"];
pub const PROXY_PORT: u16 = 3128;
pub const ROUTES_PORT: u16 = 9099;
pub const ADMIN_PORT: u16 = 9090;
pub const DEFAULT_AGENT_IMAGE: &str = "claude-bottle/agent:latest";
/// Label put on every container and network a bottle creates; its value is the bottle id.
pub const LABEL_BOTTLE: &str = "claude-bottle.bottle";
pub const LABEL_ROLE: &str = "claude-bottle.role";
pub const LABEL_AGENT: &str = "claude-bottle.agent";

/// Operator choices from the command line (trusted: they come from the user, not a manifest).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub agent_image: Option<String>,
    /// Runs this instead of `claude` (non-interactive).
    pub command: Option<Vec<String>>,
    /// Extra labels for every resource (tests use them to find and clean up their own).
    pub labels: Vec<(String, String)>,
    /// Use this existing network as the sidecar's way out instead of creating one.
    pub egress_network: Option<String>,
    /// `[upstream.hosts]` pins (operator-trusted, exempt from the private-address guard).
    pub upstream_hosts: Vec<(String, String)>,
    /// Extra PEM roots the proxy trusts for upstream TLS.
    pub upstream_cas: Vec<std::path::PathBuf>,
    /// `$CLAUDE_BOTTLE_HOME/skills`: each agent skill is the directory of that name in it.
    pub skills_root: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoutePlan {
    pub path: String,
    pub upstream: String,
    pub auth_scheme: String,
    pub token_ref: String,
    pub roles: Vec<Role>,
    /// Whether the host environment has `token_ref` set (the value itself is never read here).
    pub token_set: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Images {
    pub agent: String,
    /// Tagged by the proxy binary's hash once assembled; `None` in a plan made without Docker.
    pub sidecar: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Networks {
    pub internal: String,
    pub egress: String,
    pub egress_created: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Containers {
    pub agent: String,
    pub sidecar: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GitPlan {
    pub name: String,
    pub upstream: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id: String,
    pub agent: String,
    pub agent_origin: crate::manifest::Origin,
    pub bottle: String,
    pub skills: Vec<String>,
    pub allowlist: Vec<String>,
    pub routes: Vec<RoutePlan>,
    /// Names of the variables the agent sees. Values are wiring (proxy URLs, CA paths,
    /// placeholders) or the bottle's own `env`; none is a credential.
    pub env_names: Vec<String>,
    /// Files written into the agent before it starts.
    pub files: Vec<String>,
    pub images: Images,
    pub networks: Networks,
    pub containers: Containers,
    pub aliases: Vec<String>,
    pub git: Vec<GitPlan>,
    pub labels: Vec<(String, String)>,
    pub command: Vec<String>,
    pub interactive: bool,
    pub runtime: String,
    #[serde(skip)]
    pub agent_env: Vec<(String, String)>,
    #[serde(skip)]
    pub agent_files: Vec<AgentFile>,
    /// The sidecar's config without `[clients]`, which needs the internal network's addresses
    /// and is appended at launch (`clients_toml`).
    #[serde(skip)]
    pub proxy_config: String,
    #[serde(skip)]
    pub upstream_cas: Vec<std::path::PathBuf>,
    /// Skill name → host directory, copied to `~/.claude/skills/<name>/` in the agent.
    #[serde(skip)]
    pub skill_dirs: Vec<(String, std::path::PathBuf)>,
}

/// A fresh, short bottle id: `<agent>-<8 hex>`; Docker names derive from it.
pub fn new_id(agent: &str) -> String {
    format!("{agent}-{:08x}", rand::random::<u32>())
}

/// Allowlist = defaults ∪ bottle ∪ route upstream hosts, normalized, sorted, deduplicated.
pub fn allowlist(resolved: &Resolved) -> Vec<String> {
    let mut all: Vec<String> = DEFAULT_ALLOWLIST.iter().map(|s| (*s).to_owned()).collect();
    all.extend(resolved.bottle.allowlist.iter().cloned());
    for route in &resolved.bottle.routes {
        if let Ok(host) = rules::upstream_host(&route.upstream) {
            all.push(host);
        }
    }
    all.sort();
    all.dedup();
    all
}

/// Builds the plan. `sidecar_image` is the tag the assembled proxy image will have.
pub fn build(resolved: &Resolved, id: &str, sidecar_image: &str, opts: &Options) -> Plan {
    let bottle = &resolved.bottle;
    let allow = allowlist(resolved);
    let routes: Vec<RoutePlan> = bottle
        .routes
        .iter()
        .map(|r| RoutePlan {
            path: r.path.clone(),
            upstream: r.upstream.clone(),
            auth_scheme: r.auth_scheme.clone(),
            token_ref: r.token_ref.clone(),
            roles: r.roles.clone(),
            token_set: std::env::var_os(&r.token_ref).is_some_and(|v| !v.is_empty()),
        })
        .collect();
    let agent_env = agent_env::env(resolved, id);
    let agent_files = agent_env::files(resolved);
    let mut labels = vec![
        (LABEL_BOTTLE.to_owned(), id.to_owned()),
        (LABEL_AGENT.to_owned(), resolved.agent.name.clone()),
    ];
    labels.extend(opts.labels.iter().cloned());
    let command = match &opts.command {
        Some(cmd) => cmd.clone(),
        None => claude_command(&resolved.agent.system_prompt),
    };
    let mut env_names: Vec<String> = agent_env.iter().map(|(k, _)| k.clone()).collect();
    env_names.sort();
    let upstream_cas = opts.upstream_cas.clone();
    Plan {
        id: id.to_owned(),
        agent: resolved.agent.name.clone(),
        agent_origin: resolved.agent.origin,
        bottle: bottle.name.clone(),
        skills: resolved.agent.skills.clone(),
        proxy_config: proxy_config_toml(&allow, bottle, &opts.upstream_hosts, upstream_cas.len()),
        allowlist: allow,
        routes,
        env_names,
        files: agent_files.iter().map(|f| f.path.clone()).collect(),
        images: Images {
            agent: opts
                .agent_image
                .clone()
                .unwrap_or_else(|| DEFAULT_AGENT_IMAGE.to_owned()),
            sidecar: sidecar_image.to_owned(),
        },
        networks: Networks {
            internal: format!("claude-bottle-{id}-internal"),
            egress: opts
                .egress_network
                .clone()
                .unwrap_or_else(|| format!("claude-bottle-{id}-egress")),
            egress_created: opts.egress_network.is_none(),
        },
        containers: Containers {
            agent: format!("claude-bottle-{id}-agent"),
            sidecar: format!("claude-bottle-{id}-sidecar"),
        },
        aliases: SIDECAR_ALIASES.iter().map(|s| (*s).to_owned()).collect(),
        git: bottle
            .git
            .iter()
            .map(|g| GitPlan {
                name: g.name.clone(),
                upstream: g.upstream.clone(),
            })
            .collect(),
        labels,
        interactive: opts.command.is_none(),
        command,
        runtime: "auto".to_owned(),
        agent_env,
        agent_files,
        upstream_cas,
        skill_dirs: match &opts.skills_root {
            Some(root) => resolved
                .agent
                .skills
                .iter()
                .map(|s| (s.clone(), root.join(s)))
                .collect(),
            None => Vec::new(),
        },
    }
}

fn claude_command(system_prompt: &str) -> Vec<String> {
    let mut cmd = vec!["claude".to_owned()];
    if !system_prompt.is_empty() {
        cmd.push("--append-system-prompt".to_owned());
        cmd.push(system_prompt.to_owned());
    }
    cmd
}

#[cfg(test)]
mod tests;
