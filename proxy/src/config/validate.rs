//! Raw TOML values → typed, normalized config. Every error names its key path and line.

use super::clients::ClientsConfig;
use super::raw::{RawClients, RawConfig, RawDlp, RawInject, RawRoute, RawUpstream};
use super::routes::{self, Inject, Route, TokenSource};
use super::schema::Lines;
use super::{
    AuditTarget, CaConfig, Config, ConfigError, DlpConfig, DlpMode, EgressConfig, UpstreamConfig,
};
use crate::policy::allowlist::{AllowEntry, Pattern, Ports};
use crate::policy::host::Host;
use crate::policy::ssrf;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Same floor as CIDR allow entries: `allow_private = ["0.0.0.0/0"]` would disable the guard.
const MIN_PRIVATE_PREFIX: u8 = 8;

struct Ctx<'a> {
    lines: &'a Lines,
    base: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let key = key.into();
        // Fall back to the parent key's line (`routes[0]` for a missing `routes[0].x`).
        let line = self.lines.line(&key).or_else(|| {
            key.rsplit_once(['.', '['])
                .and_then(|(p, _)| self.lines.line(p))
        });
        ConfigError::Invalid {
            key,
            message: message.into(),
            line,
        }
    }

    fn addr(&self, key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
        v.parse().map_err(|_| {
            self.err(
                key,
                format!("{v:?} is not an address:port (e.g. \"127.0.0.1:3128\")"),
            )
        })
    }

    fn path(&self, key: &str, v: &str) -> Result<std::path::PathBuf, ConfigError> {
        if v.is_empty() {
            return Err(self.err(key, "empty path"));
        }
        Ok(self.base.join(v))
    }

    /// Exactly one of `token_env` (a variable name) and `token_file` (a path, relative to the
    /// config's directory).
    fn token_source(
        &self,
        key: &dyn Fn(&str) -> String,
        env: Option<String>,
        file: Option<String>,
    ) -> Result<TokenSource, ConfigError> {
        match (env, file) {
            (Some(_), Some(_)) => Err(self.err(
                key("token_file"),
                "set either token_env or token_file, not both",
            )),
            (None, None) => Err(self.err(
                key("token_env"),
                "missing: set token_env (an environment variable name) or token_file (a path)",
            )),
            (Some(env), None) if routes::valid_env_name(&env) => Ok(TokenSource::Env(env)),
            (Some(env), None) => Err(self.err(
                key("token_env"),
                format!("{env:?} is not an environment variable name"),
            )),
            // `=` is refused because the path also names the token where environment variable
            // names go (known-secret rule ids, the list of names scrubbed from the environment).
            (None, Some(file)) if file.contains(['=', '\0']) => Err(self.err(
                key("token_file"),
                format!("{file:?} must not contain '=' or NUL"),
            )),
            (None, Some(file)) => Ok(TokenSource::File(self.path(&key("token_file"), &file)?)),
        }
    }

    fn entries(&self, key: &str, list: &[String]) -> Result<Vec<AllowEntry>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                AllowEntry::parse(s).map_err(|e| self.err(format!("{key}[{i}]"), e.to_string()))
            })
            .collect()
    }
}

pub(crate) fn validate(raw: RawConfig, base: &Path, lines: &Lines) -> Result<Config, ConfigError> {
    let cx = Ctx { lines, base };
    let listen = cx.addr(
        "listen",
        raw.listen.as_deref().unwrap_or(super::DEFAULT_LISTEN),
    )?;
    let admin_listen = raw
        .admin_listen
        .as_deref()
        .map(|v| cx.addr("admin_listen", v))
        .transpose()?;
    let routes_listen = raw
        .routes_listen
        .as_deref()
        .map(|v| cx.addr("routes_listen", v))
        .transpose()?;
    let audit = match raw.audit.as_deref() {
        None | Some("stdout") => AuditTarget::Stdout,
        Some("stderr") => AuditTarget::Stderr,
        Some(p) => AuditTarget::File(cx.path("audit", p)?),
    };
    let ca = match raw.ca {
        Some(ca) => Some(CaConfig {
            cert: cx.path("ca.cert", &ca.cert)?,
            key: cx.path("ca.key", &ca.key)?,
        }),
        None => None,
    };
    let egress = EgressConfig {
        allow: cx.entries("egress.allow", &raw.egress.allow)?,
        passthrough: cx.entries("egress.passthrough", &raw.egress.passthrough)?,
        allow_private: raw
            .egress
            .allow_private
            .iter()
            .enumerate()
            .map(|(i, s)| {
                private_net(s).map_err(|m| cx.err(format!("egress.allow_private[{i}]"), m))
            })
            .collect::<Result<_, _>>()?,
    };
    let clients = clients(&cx, &raw.clients)?;
    let upstream = upstream(&cx, raw.upstream)?;
    let dlp = dlp(&cx, raw.dlp)?;
    let routes = routes(&cx, raw.routes)?;
    if !routes.is_empty() && routes_listen.is_none() {
        return Err(cx.err(
            "routes_listen",
            "[[routes]] are defined but routes_listen is not set (e.g. \"0.0.0.0:9099\")",
        ));
    }
    let inject = injects(&cx, raw.inject, &egress.passthrough)?;
    Ok(Config {
        listen,
        admin_listen,
        routes_listen,
        audit,
        ca,
        clients,
        egress,
        upstream,
        dlp,
        routes,
        inject,
    })
}

/// An `allow_private` entry: an address or CIDR ([`ip_net`]) no broader than
/// `MIN_PRIVATE_PREFIX`.
fn private_net(s: &str) -> Result<IpNet, String> {
    let net = ip_net(s)?;
    if net.prefix_len() < MIN_PRIVATE_PREFIX {
        return Err(format!("{s:?} is too broad: prefixes shorter than /{MIN_PRIVATE_PREFIX} would disable the guard"));
    }
    Ok(net)
}

/// `10.0.0.5`, `10.0.0.0/8`, `fd00::/8` or `[fd00::]/8`; host bits must be clear.
fn ip_net(s: &str) -> Result<IpNet, String> {
    let unbracketed = s.replacen('[', "", 1).replacen(']', "", 1);
    let (addr, prefix) = match unbracketed.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (unbracketed.as_str(), None),
    };
    let ip = match Host::parse(addr) {
        Ok(Host::Ip(ip)) => ip,
        _ => return Err(format!("{s:?} is not an IP address or CIDR")),
    };
    let net = match prefix {
        None => IpNet::from(ip),
        Some(p) => p
            .parse::<u8>()
            .ok()
            .and_then(|len| IpNet::new(ip, len).ok())
            .ok_or_else(|| format!("{s:?}: invalid CIDR prefix"))?,
    };
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set; did you mean \"{}\"?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// `[clients]`: addresses or CIDRs, any prefix length (`0.0.0.0/0` in `allow` only spells out
/// the default).
fn clients(cx: &Ctx<'_>, raw: &RawClients) -> Result<ClientsConfig, ConfigError> {
    let list = |key: &str, v: &[String]| -> Result<Vec<IpNet>, ConfigError> {
        v.iter()
            .enumerate()
            .map(|(i, s)| ip_net(s).map_err(|m| cx.err(format!("{key}[{i}]"), m)))
            .collect()
    };
    Ok(ClientsConfig {
        allow: list("clients.allow", &raw.allow)?,
        deny: list("clients.deny", &raw.deny)?,
    })
}

fn upstream(cx: &Ctx<'_>, raw: RawUpstream) -> Result<UpstreamConfig, ConfigError> {
    let extra_roots = raw
        .extra_roots
        .iter()
        .enumerate()
        .map(|(i, p)| cx.path(&format!("upstream.extra_roots[{i}]"), p))
        .collect::<Result<_, _>>()?;
    let mut hosts = BTreeMap::new();
    for (name, addr) in &raw.hosts {
        let key = format!("upstream.hosts.\"{name}\"");
        let name = match Host::parse(name) {
            Ok(Host::Name(n)) => n,
            Ok(Host::Ip(_)) => {
                return Err(cx.err(key, "the key must be a host name, not an IP address"))
            }
            Err(e) => return Err(cx.err(key, format!("invalid host name: {e}"))),
        };
        let ip = match Host::parse(addr) {
            Ok(Host::Ip(ip)) => ip,
            _ => return Err(cx.err(key, format!("{addr:?} is not an IP address"))),
        };
        if let Some(b) = ssrf::classify(ip).filter(|b| b.never) {
            return Err(cx.err(
                key,
                format!("{ip} is a {} address and can never be dialed", b.class),
            ));
        }
        if hosts.insert(name.clone(), ip).is_some() {
            return Err(cx.err(
                key,
                format!("{name:?} is listed twice (after normalization)"),
            ));
        }
    }
    let nameservers = raw
        .nameservers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, super::DNS_PORT))
                })
                .map_err(|_| {
                    cx.err(
                        format!("upstream.nameservers[{i}]"),
                        format!("{s:?} is not an IP or IP:port"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(UpstreamConfig {
        extra_roots,
        hosts,
        nameservers,
    })
}

fn dlp(cx: &Ctx<'_>, raw: RawDlp) -> Result<DlpConfig, ConfigError> {
    let mode = match raw.mode.as_deref() {
        None | Some("block") => DlpMode::Block,
        Some("warn") => DlpMode::Warn,
        Some("off") => DlpMode::Off,
        Some(other) => {
            return Err(cx.err(
                "dlp.mode",
                format!("{other:?}: expected \"block\", \"warn\" or \"off\""),
            ))
        }
    };
    for (key, ids) in [
        ("dlp.disable_rules", &raw.disable_rules),
        ("dlp.warn_rules", &raw.warn_rules),
    ] {
        for (i, id) in ids.iter().enumerate() {
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(cx.err(format!("{key}[{i}]"), format!("{id:?} is not a rule id")));
            }
        }
    }
    if let Some((i, id)) = raw
        .warn_rules
        .iter()
        .enumerate()
        .find(|(_, id)| raw.disable_rules.contains(id))
    {
        return Err(cx.err(
            format!("dlp.warn_rules[{i}]"),
            format!("{id:?} is also in dlp.disable_rules"),
        ));
    }
    for (i, v) in raw.known_secret_env.iter().enumerate() {
        if !routes::valid_env_name(v) {
            return Err(cx.err(
                format!("dlp.known_secret_env[{i}]"),
                format!("{v:?} is not an environment variable name"),
            ));
        }
    }
    Ok(DlpConfig {
        mode,
        exempt_hosts: cx.entries("dlp.exempt_hosts", &raw.exempt_hosts)?,
        disable_rules: raw.disable_rules,
        warn_rules: raw.warn_rules,
        known_secret_env: raw.known_secret_env,
    })
}

fn routes(cx: &Ctx<'_>, raw: Vec<RawRoute>) -> Result<Vec<Route>, ConfigError> {
    let mut out: Vec<Route> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        let path = routes::normalize_route_path(&r.path).map_err(|m| cx.err(key("path"), m))?;
        if let Some(j) = out.iter().position(|o| o.path == path) {
            return Err(cx.err(
                key("path"),
                format!("{path:?} is already used by routes[{j}]"),
            ));
        }
        let upstream =
            routes::parse_upstream(&r.upstream).map_err(|m| cx.err(key("upstream"), m))?;
        let auth_scheme = r
            .auth_scheme
            .unwrap_or_else(|| routes::DEFAULT_AUTH_SCHEME.to_owned());
        if !routes::valid_auth_scheme(&auth_scheme) {
            return Err(cx.err(
                key("auth_scheme"),
                format!("{auth_scheme:?} is not a valid Authorization scheme"),
            ));
        }
        let token = cx.token_source(&key, r.token_env, r.token_file)?;
        out.push(Route {
            path,
            upstream,
            auth_scheme,
            token,
        });
    }
    Ok(out)
}

fn injects(
    cx: &Ctx<'_>,
    raw: Vec<RawInject>,
    passthrough: &[AllowEntry],
) -> Result<Vec<Inject>, ConfigError> {
    let mut out: Vec<Inject> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("inject[{i}].{k}");
        let entry = AllowEntry::parse(&r.host).map_err(|e| cx.err(key("host"), e.to_string()))?;
        let host = match entry.pattern {
            Pattern::Exact(n) => Host::Name(n),
            Pattern::Net(net) if net.prefix_len() == net.max_prefix_len() => Host::Ip(net.addr()),
            _ => {
                return Err(cx.err(
                    key("host"),
                    format!("{:?}: injection needs one exact host", r.host),
                ))
            }
        };
        let port = match entry.ports {
            Ports::Default => 443,
            Ports::One(p) => p,
            Ports::Any => {
                return Err(cx.err(
                    key("host"),
                    format!("{:?}: name one port (default 443), not \"*\"", r.host),
                ))
            }
        };
        if passthrough
            .iter()
            .any(|p| p.matches(&host, port) && p.specificity() >= 1000)
        {
            return Err(cx.err(
                key("host"),
                format!("{} is listed in egress.passthrough, which is never intercepted, so nothing could be injected", host.authority(port)),
            ));
        }
        let header = http::HeaderName::from_bytes(r.header.as_bytes()).map_err(|_| {
            cx.err(
                key("header"),
                format!("{:?} is not a valid header name", r.header),
            )
        })?;
        if routes::FORBIDDEN_INJECT_HEADERS.contains(&header.as_str()) {
            return Err(cx.err(
                key("header"),
                format!("{header} is managed by the proxy and cannot carry a token"),
            ));
        }
        if r.placeholder.len() < routes::MIN_PLACEHOLDER_LEN
            || !r.placeholder.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(cx.err(
                key("placeholder"),
                format!(
                    "must be at least {} visible ASCII characters without spaces",
                    routes::MIN_PLACEHOLDER_LEN
                ),
            ));
        }
        let token = cx.token_source(&key, r.token_env, r.token_file)?;
        if let Some(j) = out
            .iter()
            .position(|o| o.host == host && o.port == port && o.header == header)
        {
            return Err(cx.err(
                key("host"),
                format!(
                    "{} header {header} is already injected by inject[{j}]",
                    host.authority(port)
                ),
            ));
        }
        out.push(Inject {
            host,
            port,
            header,
            placeholder: r.placeholder,
            token,
            require: r.require,
        });
    }
    Ok(out)
}
