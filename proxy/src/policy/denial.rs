//! Denials that tell the operator exactly how to allow the request.
//!
//! A bare 403 is the complaint users of other egress proxies make most. Every denial names the
//! host, the port, the reason and the config line that would allow it. The wording is a stable
//! contract: tests and scripts grep it.

use super::host::Host;
use super::ssrf::Blocked;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Hosts echoed back are truncated to this many characters (they can be attacker-chosen).
const MAX_ECHOED_HOST: usize = 255;

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// The host string is not a valid host (400).
    InvalidHost(String),
    /// Port 0 (400).
    InvalidPort,
    /// No entry allows this host and port. `near` is an entry that matches the host on other
    /// ports, if any.
    NotAllowed { near: Option<String> },
    /// The destination address is in a blocked class and not exempt.
    PrivateAddress {
        addr: IpAddr,
        class: &'static str,
        embedded: Option<(&'static str, Ipv4Addr)>,
    },
    /// An address no exemption can make dialable (unspecified, multicast, broadcast).
    NeverDialable { addr: IpAddr, class: &'static str },
    /// `localhost` / `*.localhost` without an `[upstream.hosts]` override.
    LocalhostName,
    /// DNS failed or timed out (502).
    ResolveFailed(String),
    /// DNS answered with no addresses (502).
    NoAddresses,
}

impl DenyReason {
    pub(crate) fn blocked(addr: IpAddr, b: Blocked) -> DenyReason {
        if b.never {
            DenyReason::NeverDialable {
                addr,
                class: b.class,
            }
        } else {
            DenyReason::PrivateAddress {
                addr,
                class: b.class,
                embedded: b.embedded,
            }
        }
    }

    /// Short machine-friendly class for audit events and metrics labels.
    pub fn class(&self) -> &'static str {
        match self {
            DenyReason::InvalidHost(_) => "invalid_host",
            DenyReason::InvalidPort => "invalid_port",
            DenyReason::NotAllowed { .. } => "not_allowed",
            DenyReason::PrivateAddress { .. } => "private_address",
            DenyReason::NeverDialable { .. } => "never_dialable",
            DenyReason::LocalhostName => "localhost",
            DenyReason::ResolveFailed(_) => "resolve_failed",
            DenyReason::NoAddresses => "no_addresses",
        }
    }
}

impl fmt::Display for DenyReason {
    /// One line for the audit `reason` field (the body has the full explanation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::InvalidHost(why) => write!(f, "invalid host: {why}"),
            DenyReason::InvalidPort => f.write_str("invalid port"),
            DenyReason::NotAllowed { .. } => f.write_str("not in allowlist"),
            DenyReason::PrivateAddress { addr, class, .. } => {
                write!(f, "private address {addr} ({class})")
            }
            DenyReason::NeverDialable { addr, class } => {
                write!(f, "undialable address {addr} ({class})")
            }
            DenyReason::LocalhostName => f.write_str("localhost name"),
            DenyReason::ResolveFailed(why) => write!(f, "DNS resolution failed: {why}"),
            DenyReason::NoAddresses => f.write_str("DNS returned no addresses"),
        }
    }
}

/// A refused destination, ready to be answered and audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The host as displayed (normalized when it parsed, else the sanitized input).
    pub host: String,
    pub port: u16,
    pub reason: DenyReason,
    /// The lines telling the operator how to allow it (may be empty).
    pub hint: String,
}

impl Denial {
    /// A denial for a normalized host.
    pub fn new(host: &Host, port: u16, reason: DenyReason) -> Denial {
        let hint = hint_for(host, port, &reason);
        Denial {
            host: bracketed(host),
            port,
            reason,
            hint,
        }
    }

    /// A denial for input that did not parse as a host.
    pub fn invalid_host(raw: &str, port: u16, why: impl fmt::Display) -> Denial {
        Denial {
            host: sanitize(raw),
            port,
            reason: DenyReason::InvalidHost(why.to_string()),
            hint: String::new(),
        }
    }

    /// HTTP status to answer with: 400 for malformed destinations, 502 when DNS fails, else 403.
    pub fn status(&self) -> u16 {
        match self.reason {
            DenyReason::InvalidHost(_) | DenyReason::InvalidPort => 400,
            DenyReason::ResolveFailed(_) | DenyReason::NoAddresses => 502,
            _ => 403,
        }
    }

    /// Plain-text body for a denied CONNECT.
    pub fn body(&self) -> String {
        self.body_for("CONNECT")
    }

    /// Plain-text body naming the request method (`CONNECT`, `GET`, ...).
    pub fn body_for(&self, method: &str) -> String {
        let mut out = format!(
            "egress-proxy: blocked {} to {}:{}\nreason: {}\n",
            sanitize(method),
            self.host,
            self.port,
            self.reason_line()
        );
        out.push_str(&self.hint);
        out
    }

    /// The text after `reason: ` in the body.
    pub fn reason_line(&self) -> String {
        match &self.reason {
            DenyReason::InvalidHost(why) => format!("invalid host: {why}"),
            DenyReason::InvalidPort => "invalid port".to_owned(),
            DenyReason::NotAllowed { near: None } => "host not in allowlist".to_owned(),
            DenyReason::NotAllowed { near: Some(e) } => {
                format!(
                    "port {} not in allowlist for this host (entry \"{e}\" allows other ports)",
                    self.port
                )
            }
            DenyReason::PrivateAddress {
                addr,
                class,
                embedded,
            } => {
                let via = embedded
                    .map_or_else(String::new, |(form, v4)| format!(" ({form} form of {v4})"));
                format!(
                    "{} resolves to {addr}{via}, a {class} address (private-address guard)",
                    self.host
                )
            }
            DenyReason::NeverDialable { addr, class } => {
                format!(
                    "{} resolves to {addr}, a {class} address, which is never dialed",
                    self.host
                )
            }
            DenyReason::LocalhostName => "localhost names are not resolved by the proxy".to_owned(),
            DenyReason::ResolveFailed(why) => format!("DNS resolution failed: {why}"),
            DenyReason::NoAddresses => "DNS returned no addresses".to_owned(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blocked {}:{}: {}",
            self.host,
            self.port,
            self.reason_line()
        )
    }
}

impl std::error::Error for Denial {}

/// The allow entry a user would write for this host and port.
pub fn suggested_entry(host: &Host, port: u16) -> String {
    match port {
        80 | 443 => bracketed(host),
        _ => host.authority(port),
    }
}

/// The host as it appears before `:port` (IPv6 in brackets).
fn bracketed(host: &Host) -> String {
    match host {
        Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        other => other.to_string(),
    }
}

fn hint_for(host: &Host, port: u16, reason: &DenyReason) -> String {
    match reason {
        DenyReason::NotAllowed { .. } => {
            let entry = suggested_entry(host, port);
            let mut hint = format!(
                "to allow it, add to the bottle manifest:  egress.allowlist: [\"{entry}\"]\n\
                 or to the proxy config [egress] allow:    \"{entry}\"\n"
            );
            if let Host::Ip(ip) = host {
                if super::ssrf::classify(*ip).is_some() {
                    hint.push_str(&format!(
                        "warning: {ip} is a private address; an explicit IP entry also exempts it from \
                         the private-address guard on that port\n"
                    ));
                }
            }
            hint
        }
        DenyReason::PrivateAddress { addr, .. } => {
            let net = match addr {
                IpAddr::V4(a) => format!("{a}/32"),
                IpAddr::V6(a) => format!("{a}/128"),
            };
            let mut hint = format!(
                "to allow it, add to the proxy config [egress]:  allow_private = [\"{net}\"]\n\
                 warning: this exempts {addr} from the private-address (SSRF) guard for every allowed \
                 name that resolves to it; only do this for a service the bottle is meant to reach\n"
            );
            if let Host::Name(n) = host {
                hint.push_str(&format!("or pin the name in [upstream.hosts]:  \"{n}\" = \"{addr}\"\n"));
            }
            hint
        }
        DenyReason::LocalhostName => format!(
            "to allow it, pin the name in the proxy config [upstream.hosts]:  \"{host}\" = \"127.0.0.1\"\n"
        ),
        _ => String::new(),
    }
}

/// Echo untrusted input safely: no control characters, bounded length.
fn sanitize(raw: &str) -> String {
    raw.chars()
        .take(MAX_ECHOED_HOST)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn not_allowed_default_port_body() {
        let d = Denial::new(
            &host("evil.example"),
            443,
            DenyReason::NotAllowed { near: None },
        );
        assert_eq!(d.status(), 403);
        assert_eq!(
            d.body(),
            "egress-proxy: blocked CONNECT to evil.example:443\n\
             reason: host not in allowlist\n\
             to allow it, add to the bottle manifest:  egress.allowlist: [\"evil.example\"]\n\
             or to the proxy config [egress] allow:    \"evil.example\"\n"
        );
    }

    #[test]
    fn not_allowed_other_port_suggests_port() {
        let d = Denial::new(
            &host("evil.example"),
            8443,
            DenyReason::NotAllowed {
                near: Some("evil.example".into()),
            },
        );
        let body = d.body_for("GET");
        assert!(
            body.starts_with("egress-proxy: blocked GET to evil.example:8443\n"),
            "{body}"
        );
        assert!(
            body.contains("reason: port 8443 not in allowlist for this host"),
            "{body}"
        );
        assert!(
            body.contains("egress.allowlist: [\"evil.example:8443\"]"),
            "{body}"
        );
        assert!(
            body.contains("[egress] allow:    \"evil.example:8443\""),
            "{body}"
        );
    }

    #[test]
    fn ip_literals_are_bracketed_and_warned() {
        let d = Denial::new(
            &host("[fd00::5]"),
            8443,
            DenyReason::NotAllowed { near: None },
        );
        let body = d.body();
        assert!(body.contains("blocked CONNECT to [fd00::5]:8443"), "{body}");
        assert!(body.contains("\"[fd00::5]:8443\""), "{body}");
        assert!(
            body.contains("warning: fd00::5 is a private address"),
            "{body}"
        );
        let d = Denial::new(
            &host("203.0.113.9"),
            443,
            DenyReason::NotAllowed { near: None },
        );
        assert!(d.body().contains("allow:    \"203.0.113.9\"\n"));
        assert!(!d.body().contains("warning"));
    }

    #[test]
    fn private_address_suggests_allow_private() {
        let addr: IpAddr = "10.0.0.5".parse().unwrap();
        let b = super::super::ssrf::classify(addr).unwrap();
        let d = Denial::new(&host("db.example"), 443, DenyReason::blocked(addr, b));
        assert_eq!(d.status(), 403);
        let body = d.body();
        assert!(
            body.contains(
                "reason: db.example resolves to 10.0.0.5, a private network (RFC 1918) address"
            ),
            "{body}"
        );
        assert!(body.contains("allow_private = [\"10.0.0.5/32\"]"), "{body}");
        assert!(body.contains("warning: this exempts 10.0.0.5"), "{body}");
        assert!(body.contains("\"db.example\" = \"10.0.0.5\""), "{body}");
        assert_eq!(d.reason.class(), "private_address");
        assert_eq!(
            d.reason.to_string(),
            "private address 10.0.0.5 (private network (RFC 1918))"
        );
    }

    #[test]
    fn embedded_forms_are_explained() {
        let addr: IpAddr = "64:ff9b::a9fe:a9fe".parse().unwrap();
        let b = super::super::ssrf::classify(addr).unwrap();
        let d = Denial::new(&host("meta.example"), 80, DenyReason::blocked(addr, b));
        assert!(
            d.body()
                .contains("(NAT64 form of 169.254.169.254), a link-local / cloud metadata"),
            "{}",
            d.body()
        );
        assert!(d
            .body()
            .contains("allow_private = [\"64:ff9b::a9fe:a9fe/128\"]"));
    }

    #[test]
    fn statuses() {
        let h = host("a.example");
        assert_eq!(
            Denial::new(&h, 443, DenyReason::ResolveFailed("timeout".into())).status(),
            502
        );
        assert_eq!(Denial::new(&h, 443, DenyReason::NoAddresses).status(), 502);
        assert_eq!(Denial::invalid_host("a b", 443, "bad").status(), 400);
        let never = Denial::new(
            &h,
            443,
            DenyReason::NeverDialable {
                addr: "0.0.0.0".parse().unwrap(),
                class: "x",
            },
        );
        assert_eq!(never.status(), 403);
        assert!(never.hint.is_empty());
    }

    #[test]
    fn localhost_hint_and_sanitized_echo() {
        let d = Denial::new(&host("localhost"), 8080, DenyReason::LocalhostName);
        assert!(d.body().contains("\"localhost\" = \"127.0.0.1\""));
        let d = Denial::invalid_host("evil\r\nX-Injected: 1", 443, "bad");
        assert!(!d.body().contains('\r'));
        assert_eq!(d.body().lines().count(), 2);
    }
}
