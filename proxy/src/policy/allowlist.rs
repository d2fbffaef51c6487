//! Allow entries: `host`, `host:port`, `host:*`, `*.domain[:port]`, IP literals and CIDRs.
//!
//! Entries are parsed once at load into a normalized form, so matching at request time is a
//! string or prefix comparison on already-normalized hosts. Anything ambiguous or too broad is
//! refused at load with a message naming the entry, never silently widened.

use super::host::{Host, HostError};
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// The narrowest CIDR prefix accepted: wider nets would make an explicit entry (which also
/// exempts its addresses from the private-address guard) cover most of an address family.
const MIN_V4_PREFIX: u8 = 8;
const MIN_V6_PREFIX: u8 = 8;

/// Which ports an entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// No port given: 80 and 443.
    Default,
    One(u16),
    Any,
}

impl Ports {
    pub fn allows(self, port: u16) -> bool {
        match self {
            Ports::Default => port == 80 || port == 443,
            Ports::One(p) => p == port,
            Ports::Any => true,
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::Default => f.write_str("ports 80, 443"),
            Ports::One(p) => write!(f, "port {p}"),
            Ports::Any => f.write_str("any port"),
        }
    }
}

/// What an entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this normalized name.
    Exact(String),
    /// `*.suffix`: the suffix itself and every name below it.
    Wildcard(String),
    /// An IP literal (host-length prefix) or CIDR; matches IP-literal targets only.
    Net(IpNet),
}

/// One parsed allow (or passthrough, or DLP-exempt) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub pattern: Pattern,
    pub ports: Ports,
}

/// Why an entry was refused; the message quotes the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("empty entry")]
    Empty,
    #[error("{0:?} is too broad: name a domain, e.g. \"*.example.com\"")]
    TooBroad(String),
    #[error("{0:?} is too broad: {1:?} is a public suffix shared by unrelated owners; name a registrable domain below it")]
    PublicSuffix(String, String),
    #[error("{0:?}: \"*\" is only allowed as the whole first label, as in \"*.example.com\"")]
    MisplacedWildcard(String),
    #[error("{0:?}: wildcards apply to names, not IP addresses")]
    WildcardIp(String),
    #[error("{0:?}: invalid port {1:?} (use 1-65535 or \"*\")")]
    BadPort(String, String),
    #[error("{0:?}: {1}")]
    BadHost(String, HostError),
    #[error("{0:?}: invalid CIDR prefix")]
    BadPrefix(String),
    #[error("{0:?} has host bits set; did you mean {1:?}?")]
    HostBits(String, String),
    #[error("{0:?} is too broad: CIDR prefixes shorter than /{1} are not accepted")]
    CidrTooBroad(String, u8),
    #[error("{0:?} contains whitespace")]
    Whitespace(String),
}

impl AllowEntry {
    /// Parses one entry (see docs/CONFIG.md for the syntax).
    pub fn parse(raw: &str) -> Result<AllowEntry, EntryError> {
        let s = raw.trim();
        let bad_host = |e| EntryError::BadHost(raw.to_owned(), e);
        if s.is_empty() {
            return Err(EntryError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(EntryError::Whitespace(raw.to_owned()));
        }
        let (host, prefix, port) =
            split_entry(s).ok_or_else(|| bad_host(HostError::InvalidIpv6))?;
        let ports = match port {
            None => Ports::Default,
            Some("*") => Ports::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ports::One(n),
                _ => return Err(EntryError::BadPort(raw.to_owned(), p.to_owned())),
            },
        };
        if host == "*" || host.is_empty() && port.is_some() {
            return Err(EntryError::TooBroad(raw.to_owned()));
        }
        if let Some(prefix) = prefix {
            let ip = match Host::parse(host).map_err(bad_host)? {
                Host::Ip(ip) => ip,
                Host::Name(_) => return Err(EntryError::BadPrefix(raw.to_owned())),
            };
            return Ok(AllowEntry {
                pattern: Pattern::Net(parse_net(raw, ip, prefix)?),
                ports,
            });
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(EntryError::MisplacedWildcard(raw.to_owned()));
            }
            let name = match Host::parse(suffix).map_err(bad_host)? {
                Host::Name(n) => n,
                Host::Ip(_) => return Err(EntryError::WildcardIp(raw.to_owned())),
            };
            if !name.contains('.') {
                return Err(EntryError::TooBroad(raw.to_owned()));
            }
            if super::suffix::is_public_suffix(&name) {
                return Err(EntryError::PublicSuffix(raw.to_owned(), name));
            }
            return Ok(AllowEntry {
                pattern: Pattern::Wildcard(name),
                ports,
            });
        }
        if host.contains('*') {
            return Err(EntryError::MisplacedWildcard(raw.to_owned()));
        }
        let pattern = match Host::parse(host).map_err(bad_host)? {
            Host::Name(n) => Pattern::Exact(n),
            Host::Ip(ip) => Pattern::Net(IpNet::from(ip)),
        };
        Ok(AllowEntry { pattern, ports })
    }

    /// Host part only (ignoring the port).
    pub fn matches_host(&self, host: &Host) -> bool {
        match (&self.pattern, host) {
            (Pattern::Exact(e), Host::Name(n)) => e == n,
            (Pattern::Wildcard(sfx), Host::Name(n)) => {
                n == sfx
                    || (n.len() > sfx.len()
                        && n.ends_with(sfx.as_str())
                        && n[..n.len() - sfx.len()].ends_with('.'))
            }
            (Pattern::Net(net), Host::Ip(ip)) => net.contains(ip),
            _ => false,
        }
    }

    pub fn matches(&self, host: &Host, port: u16) -> bool {
        self.ports.allows(port) && self.matches_host(host)
    }

    /// True for IP-literal and CIDR entries (which also exempt their addresses from the
    /// private-address guard on the ports they allow).
    pub fn is_ip(&self) -> bool {
        matches!(self.pattern, Pattern::Net(_))
    }

    /// Higher is more specific; the most specific matching entry decides the mode.
    pub fn specificity(&self) -> u32 {
        match &self.pattern {
            Pattern::Exact(_) => 1000,
            Pattern::Net(net) => 500 + u32::from(net.prefix_len()),
            Pattern::Wildcard(sfx) => 100 + sfx.split('.').count() as u32,
        }
    }
}

/// Splits into (host, CIDR prefix, port). `None` for a malformed bracket form.
fn split_entry(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let (inner, after) = (&rest[..close], &rest[close + 1..]);
        // Both `[fd00::]/8:443` and `[fd00::/8]:443` are accepted.
        let (addr, mut prefix) = match inner.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (inner, None),
        };
        let port = if after.is_empty() {
            None
        } else if let Some(p) = after.strip_prefix(':') {
            Some(p)
        } else if let Some(p) = after.strip_prefix('/') {
            if prefix.is_some() {
                return None;
            }
            let (pre, port) = match p.split_once(':') {
                Some((pre, port)) => (pre, Some(port)),
                None => (p, None),
            };
            prefix = Some(pre);
            port
        } else {
            return None;
        };
        return Some((addr, prefix, port));
    }
    // Bare IPv6 (two or more colons) cannot carry a port.
    let (hostport, port) = if s.matches(':').count() >= 2 {
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let (host, prefix) = match hostport.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    Some((host, prefix, port))
}

fn parse_net(raw: &str, ip: IpAddr, prefix: &str) -> Result<IpNet, EntryError> {
    let len: u8 = prefix
        .parse()
        .ok()
        .filter(|_| prefix.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| EntryError::BadPrefix(raw.to_owned()))?;
    let net = IpNet::new(ip, len).map_err(|_| EntryError::BadPrefix(raw.to_owned()))?;
    let min = if ip.is_ipv4() {
        MIN_V4_PREFIX
    } else {
        MIN_V6_PREFIX
    };
    if len < min {
        return Err(EntryError::CidrTooBroad(raw.to_owned(), min));
    }
    if net.trunc() != net {
        return Err(EntryError::HostBits(
            raw.to_owned(),
            format_net(&net.trunc()),
        ));
    }
    Ok(net)
}

fn format_net(net: &IpNet) -> String {
    match net {
        IpNet::V6(n) => format!("[{}]/{}", n.addr(), n.prefix_len()),
        IpNet::V4(n) => n.to_string(),
    }
}

impl fmt::Display for AllowEntry {
    /// The normalized entry, in the same syntax it was written in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Pattern::Exact(n) => f.write_str(n)?,
            Pattern::Wildcard(s) => write!(f, "*.{s}")?,
            Pattern::Net(net) if net.prefix_len() == net.max_prefix_len() => match net.addr() {
                IpAddr::V6(a) if self.ports != Ports::Default => write!(f, "[{a}]")?,
                a => write!(f, "{a}")?,
            },
            Pattern::Net(net) => f.write_str(&format_net(net))?,
        }
        match self.ports {
            Ports::Default => Ok(()),
            Ports::One(p) => write!(f, ":{p}"),
            Ports::Any => f.write_str(":*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> AllowEntry {
        AllowEntry::parse(s).unwrap_or_else(|err| panic!("{s}: {err}"))
    }
    fn h(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn normalized_display_round_trips() {
        let table = [
            ("example.com", "example.com"),
            ("Example.COM.", "example.com"),
            ("*.Example.org", "*.example.org"),
            ("api.example.net:8443", "api.example.net:8443"),
            ("api.example.net:*", "api.example.net:*"),
            ("10.1.2.0/24:5432", "10.1.2.0/24:5432"),
            ("10.1.2.0/24", "10.1.2.0/24"),
            ("0x0a.1.2.3", "10.1.2.3"),
            ("10.1.2.3:22", "10.1.2.3:22"),
            ("[fd00::]/8:443", "[fd00::]/8:443"),
            ("[fd00::/8]:443", "[fd00::]/8:443"),
            ("fd00::/8", "[fd00::]/8"),
            ("[::1]:8080", "[::1]:8080"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("[::ffff:10.0.0.1]:80", "10.0.0.1:80"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("*.githubusercontent.com", "*.githubusercontent.com"),
        ];
        for (input, want) in table {
            assert_eq!(e(input).to_string(), want, "{input}");
            assert_eq!(e(want), e(input), "{want} should reparse equal");
        }
    }

    #[test]
    fn port_semantics() {
        let bare = e("example.com");
        assert!(bare.matches(&h("example.com"), 443));
        assert!(bare.matches(&h("example.com"), 80));
        assert!(!bare.matches(&h("example.com"), 8443));
        assert!(!bare.matches(&h("example.com"), 22));
        let one = e("example.com:8443");
        assert!(one.matches(&h("example.com"), 8443));
        assert!(!one.matches(&h("example.com"), 443));
        let any = e("example.com:*");
        for port in [1, 22, 80, 443, 65535] {
            assert!(any.matches(&h("example.com"), port));
        }
    }

    #[test]
    fn wildcard_semantics() {
        let w = e("*.example.org");
        for yes in [
            "example.org",
            "a.example.org",
            "a.b.example.org",
            "EXAMPLE.ORG.",
        ] {
            assert!(w.matches(&h(yes), 443), "{yes}");
        }
        for no in [
            "badexample.org",
            "example.org.evil.com",
            "example.com",
            "org",
            "xexample.org",
        ] {
            assert!(!w.matches(&h(no), 443), "{no}");
        }
        let exact = e("example.org");
        assert!(!exact.matches(&h("a.example.org"), 443));
        assert!(!w.matches(&h("93.184.216.34"), 443));
    }

    #[test]
    fn ip_and_cidr_matching() {
        let net = e("10.1.2.0/24:5432");
        assert!(net.matches(&h("10.1.2.77"), 5432));
        assert!(net.matches(&h("0x0a010203"), 5432));
        assert!(!net.matches(&h("10.1.3.1"), 5432));
        assert!(!net.matches(&h("10.1.2.77"), 443));
        assert!(net.is_ip());
        let single = e("203.0.113.5");
        assert!(single.matches(&h("203.0.113.5"), 443));
        assert!(!single.matches(&h("203.0.113.6"), 443));
        let v6 = e("[fd00::]/8:443");
        assert!(v6.matches(&h("[fd12::1]"), 443));
        assert!(!v6.matches(&h("[fe80::1]"), 443));
        // Names never match IP entries and vice versa.
        assert!(!e("example.com").matches(&h("10.0.0.1"), 443));
    }

    #[test]
    fn rejected_entries() {
        let cases = [
            ("", "empty entry"),
            ("*", "too broad"),
            ("*:443", "too broad"),
            ("*:*", "too broad"),
            (":443", "too broad"),
            ("*.com", "too broad"),
            ("*.internal", "too broad"),
            ("*.co.uk", "public suffix"),
            ("*.github.io", "public suffix"),
            ("a.*.com", "whole first label"),
            ("*example.com", "whole first label"),
            ("*.*.example.com", "whole first label"),
            ("*.10.0.0.1", "not IP addresses"),
            ("example.com:0", "invalid port"),
            ("example.com:65536", "invalid port"),
            ("example.com:+443", "invalid port"),
            ("example.com:", "invalid port"),
            ("example.com:http", "invalid port"),
            ("10.1.2.5/24", "did you mean \"10.1.2.0/24\""),
            ("0.0.0.0/0", "shorter than /8"),
            ("::/0", "shorter than /8"),
            ("10.0.0.0/33", "invalid CIDR prefix"),
            ("10.0.0.0/x", "invalid CIDR prefix"),
            ("example.com/24", "invalid CIDR prefix"),
            ("exa mple.com", "whitespace"),
            ("[::1", "invalid IPv6"),
            ("[fe80::1%eth0]:443", "zone"),
            ("1.2.3.999", "IPv4"),
            ("http://example.com", "invalid"),
        ];
        for (input, needle) in cases {
            let err = AllowEntry::parse(input).expect_err(input).to_string();
            assert!(err.contains(needle), "{input:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn specificity_orders_exact_over_wildcards() {
        assert!(e("a.example.org").specificity() > e("*.a.example.org").specificity());
        assert!(e("*.a.example.org").specificity() > e("*.example.org").specificity());
        assert!(e("10.0.0.1").specificity() > e("10.0.0.0/8").specificity());
    }
}
