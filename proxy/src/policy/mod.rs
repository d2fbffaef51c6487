//! Egress policy: which destinations a bottle may reach, and how.
//!
//! [`Policy::check`] is pure (no I/O) and runs before a CONNECT is answered; [`Resolver`] then
//! resolves the allowed name with the private-address guard and returns the exact addresses the
//! caller must dial, so a DNS answer cannot change between check and connect (rebinding).

pub mod allowlist;
pub mod denial;
mod describe;
pub mod host;
pub mod method;
pub mod resolve;
pub mod ssrf;
mod suffix;

pub use allowlist::{AllowEntry, Ports};
pub use denial::{Denial, DenyReason};
pub use host::Host;
pub use resolve::Resolver;

use crate::config::{Config, Inject, Route};
use allowlist::Pattern;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// What the proxy does with an allowed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// TLS bumped: requests are inspected (DLP) and credentials can be injected.
    Intercept,
    /// Tunnelled as bytes (the SNI is still checked against the CONNECT host).
    Passthrough,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Intercept => "intercept",
            Mode::Passthrough => "passthrough",
        }
    }
}

/// An allowed destination. Only [`Policy::check`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub mode: Mode,
    /// The entry that allowed it, for the audit (`*.example.org`, `api.example.com:443 (route /anthropic/)`).
    pub matched_entry: String,
    private_ok: bool,
}

impl Target {
    /// True if an explicit IP/CIDR entry exempts this IP-literal target from the private-address
    /// guard (on this port only).
    pub fn private_exempt(&self) -> bool {
        self.private_ok
    }

    /// `host:port` with IPv6 bracketed.
    pub fn authority(&self) -> String {
        self.host.authority(self.port)
    }

    /// The normalized host without port or brackets (`example.com`, `10.0.0.1`, `::1`): the
    /// form used for certificate SANs and the audit.
    pub fn host_string(&self) -> String {
        self.host.to_string()
    }
}

/// Where an allow rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Allow,
    Passthrough,
    Route(String),
    Inject,
}

#[derive(Debug, Clone)]
struct Rule {
    entry: AllowEntry,
    mode: Mode,
    origin: Origin,
}

impl Rule {
    fn label(&self) -> String {
        match &self.origin {
            Origin::Allow | Origin::Passthrough => self.entry.to_string(),
            Origin::Route(p) => format!("{} (route {p})", self.entry),
            Origin::Inject => format!("{} (inject)", self.entry),
        }
    }
}

/// The compiled egress policy.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    allow_private: Vec<IpNet>,
    hosts: BTreeMap<String, IpAddr>,
    routes: Vec<Route>,
    routes_listen: Option<SocketAddr>,
    inject: Vec<Inject>,
    dlp: crate::config::DlpConfig,
}

impl Policy {
    /// Compiles the policy. Route upstreams and injection hosts are implicitly allowed (and
    /// always intercepted) on their port only.
    pub fn from_config(cfg: &Config) -> Policy {
        let mut rules = Vec::new();
        for e in &cfg.egress.allow {
            rules.push(Rule {
                entry: e.clone(),
                mode: Mode::Intercept,
                origin: Origin::Allow,
            });
        }
        for e in &cfg.egress.passthrough {
            rules.push(Rule {
                entry: e.clone(),
                mode: Mode::Passthrough,
                origin: Origin::Passthrough,
            });
        }
        for r in &cfg.routes {
            rules.push(Rule {
                entry: exact(&r.upstream.host, r.upstream.port),
                mode: Mode::Intercept,
                origin: Origin::Route(r.path.clone()),
            });
        }
        for i in &cfg.inject {
            rules.push(Rule {
                entry: exact(&i.host, i.port),
                mode: Mode::Intercept,
                origin: Origin::Inject,
            });
        }
        Policy {
            rules,
            allow_private: cfg.egress.allow_private.clone(),
            hosts: cfg.upstream.hosts.clone(),
            routes: cfg.routes.clone(),
            routes_listen: cfg.routes_listen,
            inject: cfg.inject.clone(),
            dlp: cfg.dlp.clone(),
        }
    }

    /// Decides whether `host:port` may be reached. `host` is as received (CONNECT authority
    /// host, Host header or SNI, without port; IPv6 bracketed or not) and is normalized here.
    pub fn check(&self, host: &str, port: u16) -> Result<Target, Denial> {
        let parsed = Host::parse(host).map_err(|e| Denial::invalid_host(host, port, e))?;
        self.check_host(&parsed, port)
    }

    /// [`Policy::check`] for an already-normalized host.
    pub fn check_host(&self, host: &Host, port: u16) -> Result<Target, Denial> {
        if port == 0 {
            return Err(Denial::new(host, port, DenyReason::InvalidPort));
        }
        // Addresses no entry can open (`0.0.0.0`, multicast, broadcast) are refused as such
        // first, so the denial does not suggest an allow entry that could never work.
        if let Host::Ip(ip) = host {
            if let Some(b) = ssrf::classify(*ip).filter(|b| b.never) {
                return Err(Denial::new(host, port, DenyReason::blocked(*ip, b)));
            }
        }
        // Most specific entry wins; on a tie, interception (inspection) wins: fail closed.
        let best = self
            .rules
            .iter()
            .filter(|r| r.entry.matches(host, port))
            .max_by_key(|r| (r.entry.specificity(), r.mode == Mode::Intercept));
        let Some(rule) = best else {
            let near = self
                .rules
                .iter()
                .find(|r| r.entry.matches_host(host))
                .map(Rule::label);
            return Err(Denial::new(host, port, DenyReason::NotAllowed { near }));
        };
        Ok(Target {
            host: host.clone(),
            port,
            mode: rule.mode,
            matched_entry: rule.label(),
            private_ok: rule.entry.is_ip(),
        })
    }

    /// True if `authority` (`host[:port]` from a Host header, `:authority` or a request URI)
    /// names the same normalized host and port as `target`; a missing port means `default_port`.
    /// Used to refuse domain fronting inside a tunnel.
    pub fn same_target(&self, authority: &str, default_port: u16, target: &Target) -> bool {
        host::authority_is(authority, default_port, &target.host, target.port)
    }

    /// True if two authorities (e.g. the Host header and the absolute-form URI) name the same
    /// normalized host and port.
    pub fn same_authority(&self, a: &str, b: &str, default_port: u16) -> bool {
        match (
            host::parse_authority(a, default_port),
            host::parse_authority(b, default_port),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }

    /// True if DLP scanning is skipped for this destination (`dlp.exempt_hosts`).
    pub fn dlp_exempt(&self, target: &Target) -> bool {
        self.dlp.is_exempt(&target.host, target.port)
    }

    /// Injections that apply to this destination.
    pub fn injections_for<'a>(
        &'a self,
        target: &'a Target,
    ) -> impl Iterator<Item = &'a Inject> + 'a {
        self.inject
            .iter()
            .filter(move |i| i.host == target.host && i.port == target.port)
    }
}

fn exact(host: &Host, port: u16) -> AllowEntry {
    let pattern = match host {
        Host::Name(n) => Pattern::Exact(n.clone()),
        Host::Ip(ip) => Pattern::Net(IpNet::from(*ip)),
    };
    AllowEntry {
        pattern,
        ports: Ports::One(port),
    }
}
