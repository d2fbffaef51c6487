//! Proxy configuration: TOML in, validated and normalized values out.
//!
//! Loading is strict by design (unknown keys, too-broad entries and malformed values are errors
//! naming the key and line) because a typo in an egress policy silently widens or narrows what a
//! bottle can reach. See docs/CONFIG.md for every key.

mod clients;
mod error;
mod raw;
mod routes;
mod schema;
mod secrets;
mod spanned;
mod token_file;
mod validate;

pub use clients::{ClientRefusal, ClientsConfig};
pub use error::ConfigError;
pub(crate) use routes::has_dot_or_empty_segment;
pub use routes::{
    find_route, Inject, Route, RouteUpstream, TokenRef, TokenSource, DEFAULT_AUTH_SCHEME,
    MIN_PLACEHOLDER_LEN,
};
pub use secrets::Secrets;
pub use token_file::MAX_TOKEN_FILE_BYTES;

use crate::policy::allowlist::AllowEntry;
use crate::policy::host::Host;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Default forward-proxy listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3128";
/// Config files larger than this are refused (a config is a few KiB; this bounds the read).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Port used for `upstream.nameservers` entries given without one.
pub const DNS_PORT: u16 = 53;

/// The configuration used by `egress-proxy run` without `--config`.
pub const EMBEDDED_DEFAULT_TOML: &str = r#"# egress-proxy embedded default: a small allowlist for a coding agent.
listen = "127.0.0.1:3128"

[egress]
allow = [
  "api.anthropic.com",
  "github.com",
  "api.github.com",
  "codeload.github.com",
  "*.githubusercontent.com",
  "registry.npmjs.org",
  "pypi.org",
  "files.pythonhosted.org",
  "crates.io",
  "static.crates.io",
  "index.crates.io",
]

[dlp]
mode = "block"
"#;

/// A validated configuration. Paths are absolute (resolved against the config file's directory).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub routes_listen: Option<SocketAddr>,
    pub audit: AuditTarget,
    /// `None`: the proxy generates an ephemeral CA.
    pub ca: Option<CaConfig>,
    /// Peers the proxy and routes listeners admit (`[clients]`).
    pub clients: ClientsConfig,
    pub egress: EgressConfig,
    pub upstream: UpstreamConfig,
    pub dlp: DlpConfig,
    pub routes: Vec<Route>,
    pub inject: Vec<Inject>,
}

/// Where audit events (one JSON line per decision) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Stdout,
    Stderr,
    /// Appended to.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressConfig {
    /// Allowed and intercepted (TLS bumped, inspected).
    pub allow: Vec<AllowEntry>,
    /// Allowed and tunnelled without interception.
    pub passthrough: Vec<AllowEntry>,
    /// Addresses exempt from the private-address guard.
    pub allow_private: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamConfig {
    /// PEM files trusted for upstream TLS in addition to the built-in web roots.
    pub extra_roots: Vec<PathBuf>,
    /// Static name → address overrides; operator-trusted, exempt from the private-address guard.
    pub hosts: BTreeMap<String, IpAddr>,
    /// DNS servers to use instead of /etc/resolv.conf (empty: system configuration).
    pub nameservers: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DlpMode {
    Off,
    Warn,
    #[default]
    Block,
}

impl DlpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DlpMode::Off => "off",
            DlpMode::Warn => "warn",
            DlpMode::Block => "block",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DlpConfig {
    pub mode: DlpMode,
    /// Rule ids that never fire.
    pub disable_rules: Vec<String>,
    /// Rule ids that only warn (audited, request passes) even in block mode.
    pub warn_rules: Vec<String>,
    /// Destinations whose traffic is not scanned (allow-entry syntax).
    pub exempt_hosts: Vec<AllowEntry>,
    /// Extra environment variables whose values are matched as known secrets.
    pub known_secret_env: Vec<String>,
}

impl DlpConfig {
    /// The effective mode of one rule: the global mode, lowered by per-rule overrides.
    pub fn rule_mode(&self, rule_id: &str) -> DlpMode {
        if self.disable_rules.iter().any(|r| r == rule_id) {
            DlpMode::Off
        } else if self.warn_rules.iter().any(|r| r == rule_id) {
            self.mode.min(DlpMode::Warn)
        } else {
            self.mode
        }
    }

    /// True if requests to this destination are not scanned.
    pub fn is_exempt(&self, host: &Host, port: u16) -> bool {
        self.exempt_hosts.iter().any(|e| e.matches(host, port))
    }
}

impl Config {
    /// Parses and validates TOML; relative paths resolve against `base_dir`.
    pub fn from_toml_str(src: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        // Syntax first, so a broken file reports the syntax error and its line.
        if let Err(e) = toml::from_str::<toml::Table>(src) {
            let line = e.span().map(|s| line_of(src, s.start));
            return Err(ConfigError::Syntax {
                message: e.message().to_owned(),
                line,
            });
        }
        let lines = schema::check_keys(src)?;
        let raw: raw::RawConfig = toml::from_str(src).map_err(|e| {
            let start = e.span().map(|s| s.start);
            let key = start
                .and_then(|s| lines.path_at(s))
                .unwrap_or("config")
                .to_owned();
            ConfigError::Invalid {
                message: e.message().to_owned(),
                line: start.map(|s| lines.line_at(s)),
                key,
            }
        })?;
        validate::validate(raw, base_dir, &lines)
    }

    /// Reads and parses a config file (at most [`MAX_CONFIG_BYTES`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut src = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut src)
            .map_err(io)?;
        if src.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                limit: MAX_CONFIG_BYTES,
            });
        }
        let abs = std::path::absolute(path).map_err(io)?;
        let base = abs.parent().unwrap_or(Path::new("/"));
        Config::from_toml_str(&src, base)
    }

    /// The built-in configuration ([`EMBEDDED_DEFAULT_TOML`]); `ca` is `None` (ephemeral CA).
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::from_toml_str(EMBEDDED_DEFAULT_TOML, Path::new("/"))
    }

    /// Reads every token the config names (routes, injections, `dlp.known_secret_env`): each
    /// `token_env` through `env` (normally `|k| std::env::var(k).ok()`), each `token_file` from
    /// disk (one trailing newline trimmed; group/world-accessible files refused). A missing,
    /// empty or (for header tokens) non-visible-ASCII value is an error naming the variable or
    /// file, never the value.
    pub fn resolve_secrets(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secrets, ConfigError> {
        secrets::resolve(self, env)
    }

    /// Longest-prefix route for a request target on the routes listener, with the upstream
    /// path and query it maps to.
    pub fn find_route(&self, path_and_query: &str) -> Option<(&Route, String)> {
        routes::find_route(&self.routes, path_and_query)
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
