//! Value rules shared by the manifest readers: names, env vars, allowlist entries, route fields.
//! Each returns a message without a line; the caller attaches the line.

use std::net::IpAddr;

use serde::Serialize;

use super::fields::did_you_mean;

/// What a route is for, beyond being reachable: each role makes the launcher write a config file or
/// env var in the agent so the tool talks to the route instead of the real host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    AnthropicBaseUrl,
    NpmRegistry,
    GitInsteadof,
    TeaLogin,
}

const ROLE_NAMES: &[&str] = &[
    "anthropic-base-url",
    "npm-registry",
    "git-insteadof",
    "tea-login",
];

impl Role {
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "anthropic-base-url" => Ok(Role::AnthropicBaseUrl),
            "npm-registry" => Ok(Role::NpmRegistry),
            "git-insteadof" => Ok(Role::GitInsteadof),
            "tea-login" => Ok(Role::TeaLogin),
            other => Err(match did_you_mean(other, ROLE_NAMES) {
                Some(best) => format!("unknown role `{other}`; did you mean `{best}`?"),
                None => format!("unknown role `{other}`; roles: {}", ROLE_NAMES.join(", ")),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::AnthropicBaseUrl => "anthropic-base-url",
            Role::NpmRegistry => "npm-registry",
            Role::GitInsteadof => "git-insteadof",
            Role::TeaLogin => "tea-login",
        }
    }

    /// Roles that set one process-wide value (one base URL, one registry, one tea login).
    /// `git-insteadof` rewrites per host, so several routes may carry it.
    pub fn is_singleton(self) -> bool {
        !matches!(self, Role::GitInsteadof)
    }
}

/// Manifest names are file names: `[a-z][a-z0-9-]*`.
pub fn manifest_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Names the launcher itself sets in the agent; a bottle may not override them.
pub const RESERVED_ENV: &[&str] = &[
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CODEX_CA_CERTIFICATE",
    "CLAUDE_BOTTLE",
];

pub fn env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(format!(
            "`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    if RESERVED_ENV.contains(&name) {
        return Err(format!(
            "`{name}` is set by claude-bottle itself (proxy and CA wiring) and cannot be overridden"
        ));
    }
    Ok(())
}

/// Normalizes one egress allowlist entry the way the proxy reads it: lowercase, no trailing dot,
/// IDN → punycode. Refuses what the proxy would refuse (`*`, `*.com`, URLs, paths).
pub fn allow_entry(raw: &str) -> Result<String, String> {
    let entry = raw.trim();
    if entry.contains("://") || (entry.contains('/') && !looks_like_cidr(entry)) {
        return Err(format!(
            "allowlist entry `{raw}` must be a host name (optionally `:port` or `:*`), not a URL or path"
        ));
    }
    let (host, port) =
        split_port(entry).ok_or_else(|| format!("allowlist entry `{raw}` has a bad port"))?;
    if looks_like_cidr(host) {
        let net = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<ipnet::IpNet>()
            .map_err(|_| format!("allowlist entry `{raw}` is not a valid CIDR"))?;
        let shown = match net {
            ipnet::IpNet::V6(_) if port.is_some() => format!("[{net}]"),
            _ => net.to_string(),
        };
        return Ok(join(&shown, port));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let shown = match ip {
            IpAddr::V6(_) if port.is_some() => format!("[{ip}]"),
            _ => ip.to_string(),
        };
        return Ok(join(&shown, port));
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.contains('*') {
        return Err(format!(
            "allowlist entry `{raw}`: `*` may only appear as a leading `*.` on a domain"
        ));
    }
    let ascii = idna::domain_to_ascii(name)
        .map_err(|_| format!("allowlist entry `{raw}` is not a valid host name"))?;
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        return Err(format!("allowlist entry `{raw}` is not a valid host name"));
    }
    if wildcard && !ascii.contains('.') {
        return Err(format!(
            "allowlist entry `{raw}` would allow a whole top-level domain; name a registrable domain"
        ));
    }
    let host = if wildcard {
        format!("*.{ascii}")
    } else {
        ascii
    };
    Ok(join(&host, port))
}

fn looks_like_cidr(s: &str) -> bool {
    s.trim_start_matches('[')
        .split_once('/')
        .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok())
}

/// Splits `host:port` / `host:*` / `[v6]:port`; a bare IPv6 address has no port.
fn split_port(entry: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let close = rest.find(']')?;
        let after = &rest[close + 1..];
        let host = &entry[..close + 2];
        return match after.strip_prefix(':') {
            Some(p) => valid_port(p).then_some((host, Some(p))),
            None => after.is_empty().then_some((host, None)),
        };
    }
    if entry.matches(':').count() > 1 {
        return Some((entry, None));
    }
    match entry.rsplit_once(':') {
        Some((h, p)) => valid_port(p).then_some((h, Some(p))),
        None => Some((entry, None)),
    }
}

fn valid_port(p: &str) -> bool {
    p == "*" || p.parse::<u16>().is_ok_and(|n| n > 0)
}

fn join(host: &str, port: Option<&str>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// Route paths are URL prefixes; a trailing `/` is added so `/a` cannot also match `/ab`.
pub fn route_path(path: &str) -> Result<String, String> {
    let ok = path.starts_with('/')
        && !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if !ok || path == "/" {
        return Err(format!(
            "route path `{path}` must start with `/`, name a prefix like `/anthropic/`, and use only [A-Za-z0-9/._~-]"
        ));
    }
    Ok(if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    })
}

/// The allowlist entry implied by a route upstream (`https://host[:port][/base]`).
pub fn upstream_host(upstream: &str) -> Result<String, String> {
    let rest = upstream.strip_prefix("https://").ok_or_else(|| {
        format!("route upstream `{upstream}` must be an https:// URL (the proxy never downgrades)")
    })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "route upstream `{upstream}` must not carry credentials; use token_ref"
        ));
    }
    let (host, port) = split_port(authority)
        .ok_or_else(|| format!("route upstream `{upstream}` has a bad port"))?;
    if host.contains('*') || port == Some("*") {
        return Err(format!("route upstream `{upstream}` must name one host"));
    }
    let port = port.filter(|p| *p != "443");
    allow_entry(&join(host, port)).map_err(|e| format!("route upstream `{upstream}`: {e}"))
}

pub fn auth_scheme(scheme: &str) -> Result<(), String> {
    let ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "auth_scheme `{scheme}` must be one word such as `Bearer` or `token`"
        ))
    }
}

pub fn remote_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "git remote name `{name}` must match [A-Za-z0-9._-]+"
        ))
    }
}

pub fn extra_host(host: &str, ip: &str) -> Result<(String, String), String> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("ExtraHosts `{host}`: `{ip}` is not an IP address"))?;
    let host = allow_entry(host)?;
    if host.contains(['*', ':', '/']) {
        return Err(format!("ExtraHosts key `{host}` must be a plain host name"));
    }
    Ok((host, ip.to_string()))
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
