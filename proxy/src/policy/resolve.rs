//! Guarded name resolution: resolve with a resolver the proxy controls, check every address,
//! hand back exactly the addresses to dial.
//!
//! Checking a name and then letting the connector resolve it again would let DNS answer a public
//! address to the check and `127.0.0.1` to the connect (rebinding). Callers must dial only the
//! `SocketAddr`s returned by [`Resolver::resolve_checked`].

use super::denial::{Denial, DenyReason};
use super::host::{canonical_ip, Host};
use super::{ssrf, Target};
use crate::config::Config;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Upper bound for one whole resolution (all servers and attempts).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-query timeout inside hickory (it retries up to `DNS_ATTEMPTS` times).
pub const DNS_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
pub const DNS_ATTEMPTS: usize = 2;
/// Cached records (hickory's LRU); bounds memory whatever names clients ask for.
pub const DNS_CACHE_SIZE: usize = 1024;
/// Cap on how long a positive answer is cached, whatever its TTL.
pub const DNS_MAX_TTL: Duration = Duration::from_secs(300);
/// Addresses returned per name (all are checked; the caller dials at most this many).
pub const MAX_ADDRS: usize = 16;
/// Resolver error text echoed into denials is truncated to this many characters.
const MAX_ERROR_LEN: usize = 200;

enum Backend {
    Hickory(Box<TokioResolver>),
    /// Fixed answers, for tests that must not depend on DNS.
    Static(HashMap<String, Vec<IpAddr>>),
}

/// DNS resolver with the private-address guard, `[upstream.hosts]` overrides and
/// `allow_private` exemptions.
pub struct Resolver {
    backend: Backend,
    hosts: BTreeMap<String, IpAddr>,
    allow_private: Vec<IpNet>,
    timeout: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Hickory(_) => "hickory",
            Backend::Static(_) => "static",
        };
        f.debug_struct("Resolver")
            .field("backend", &backend)
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl Resolver {
    /// Hickory resolver using `upstream.nameservers`, else /etc/resolv.conf, else (if that cannot
    /// be read) hickory's default public servers, with a warning.
    pub fn from_config(cfg: &Config) -> Resolver {
        let provider = TokioConnectionProvider::default();
        let mut builder = if cfg.upstream.nameservers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read system DNS configuration; using default resolvers");
                    TokioResolver::builder_with_config(ResolverConfig::default(), provider)
                }
            }
        } else {
            let mut rc = ResolverConfig::new();
            for addr in &cfg.upstream.nameservers {
                rc.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(rc, provider)
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = DNS_QUERY_TIMEOUT;
        opts.attempts = DNS_ATTEMPTS;
        opts.cache_size = DNS_CACHE_SIZE;
        opts.positive_max_ttl = Some(DNS_MAX_TTL);
        opts.negative_max_ttl = Some(Duration::from_secs(30));
        opts.ndots = 0;
        Resolver::new(Backend::Hickory(Box::new(builder.build())), cfg)
    }

    /// A resolver answering from a fixed map (normalized names → addresses) instead of DNS.
    /// Overrides, exemptions and the guard apply exactly as with real DNS. Meant for tests.
    pub fn with_static(cfg: &Config, answers: HashMap<String, Vec<IpAddr>>) -> Resolver {
        Resolver::new(Backend::Static(answers), cfg)
    }

    fn new(backend: Backend, cfg: &Config) -> Resolver {
        Resolver {
            backend,
            hosts: cfg.upstream.hosts.clone(),
            allow_private: cfg.egress.allow_private.clone(),
            timeout: DNS_TIMEOUT,
        }
    }

    /// Replaces the overall resolution timeout ([`DNS_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Resolver {
        self.timeout = timeout;
        self
    }

    /// Resolves an allowed target and checks every address. Denies if any address is in a
    /// blocked class and not exempt (naming the address). The caller must dial only the returned
    /// addresses.
    pub async fn resolve_checked(&self, target: &Target) -> Result<Vec<SocketAddr>, Denial> {
        let deny = |reason| Denial::new(&target.host, target.port, reason);
        let name = match &target.host {
            Host::Ip(ip) => {
                self.check_ip(target, *ip).map_err(deny)?;
                return Ok(vec![SocketAddr::new(*ip, target.port)]);
            }
            Host::Name(n) => n,
        };
        if let Some(ip) = self.hosts.get(name) {
            // Operator-trusted override: only the never-dialable classes still apply.
            if let Some(b) = ssrf::classify(*ip).filter(|b| b.never) {
                return Err(deny(DenyReason::blocked(*ip, b)));
            }
            return Ok(vec![SocketAddr::new(*ip, target.port)]);
        }
        if is_localhost_name(name) {
            return Err(deny(DenyReason::LocalhostName));
        }
        let ips = self.lookup(name).await.map_err(deny)?;
        let mut out: Vec<SocketAddr> = Vec::with_capacity(ips.len().min(MAX_ADDRS));
        for ip in ips {
            let ip = canonical_ip(ip);
            self.check_ip(target, ip).map_err(deny)?;
            let sa = SocketAddr::new(ip, target.port);
            if !out.contains(&sa) && out.len() < MAX_ADDRS {
                out.push(sa);
            }
        }
        if out.is_empty() {
            return Err(deny(DenyReason::NoAddresses));
        }
        Ok(out)
    }

    fn check_ip(&self, target: &Target, ip: IpAddr) -> Result<(), DenyReason> {
        let Some(b) = ssrf::classify(ip) else {
            return Ok(());
        };
        // An explicit IP/CIDR allow entry exempts the addresses it names, not the private IPv4
        // an IPv6 form embeds: `[64:ff9b::]/96` (a NAT64 network) must not open the metadata
        // service at 64:ff9b::a9fe:a9fe. Those need `allow_private` for the IPv4 address.
        let exempt = (target.private_exempt() && b.embedded.is_none())
            || self.allow_private.iter().any(|n| n.contains(&ip))
            || b.embedded.is_some_and(|(_, v4)| {
                self.allow_private
                    .iter()
                    .any(|n| n.contains(&IpAddr::V4(v4)))
            });
        if b.never || !exempt {
            return Err(DenyReason::blocked(ip, b));
        }
        Ok(())
    }

    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, DenyReason> {
        match &self.backend {
            Backend::Static(map) => map
                .get(name)
                .cloned()
                .ok_or_else(|| DenyReason::ResolveFailed(format!("no record for {name}"))),
            Backend::Hickory(r) => {
                // Fully qualified: search domains must not turn an allowed name into another one.
                let fqdn = format!("{name}.");
                match tokio::time::timeout(self.timeout, r.lookup_ip(fqdn)).await {
                    Err(_) => Err(DenyReason::ResolveFailed(format!(
                        "timed out after {} ms",
                        self.timeout.as_millis()
                    ))),
                    Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => {
                        Err(DenyReason::NoAddresses)
                    }
                    Ok(Err(e)) => Err(DenyReason::ResolveFailed(
                        e.to_string().chars().take(MAX_ERROR_LEN).collect(),
                    )),
                    Ok(Ok(lookup)) => Ok(lookup.iter().collect()),
                }
            }
        }
    }
}

/// `localhost` and `*.localhost` (RFC 6761) always mean this machine; never ask DNS.
pub fn is_localhost_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}
