//! Host normalization: one canonical form per destination.
//!
//! The allowlist, the SSRF guard, the certificate cache and the audit log must all agree on what a
//! host *is*; otherwise `0x7f.1` slips past a check written for `127.0.0.1`, or `EXAMPLE.com.` past
//! one written for `example.com`. IPv4 literals are parsed the way browsers and curl's URL parser do
//! (WHATWG URL "IPv4 parser": decimal, hex, octal and short forms), because those are the notations
//! an attacker can make a client send.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// DNS limits (RFC 1035): a name of at most 253 characters in labels of at most 63.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A normalized destination host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// Lowercase ASCII (punycode) name without trailing dot.
    Name(String),
    /// An IP address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is stored as IPv4.
    Ip(IpAddr),
}

/// Why a host string is not a valid host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("IPv6 zone identifiers are not allowed")]
    ZoneId,
    #[error("invalid IPv6 address")]
    InvalidIpv6,
    #[error("looks like an IPv4 address but is not a valid one")]
    InvalidIpv4,
    #[error("invalid port")]
    InvalidPort,
    #[error("invalid host name: {0}")]
    InvalidName(&'static str),
}

impl Host {
    /// Parses and normalizes a host as it appears in a CONNECT authority, a Host header or SNI
    /// (without port). IPv6 may be bracketed or bare.
    pub fn parse(input: &str) -> Result<Host, HostError> {
        if input.is_empty() {
            return Err(HostError::Empty);
        }
        if let Some(inner) = input.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpv6)?;
            return parse_ipv6(inner);
        }
        if input.bytes().any(|b| b == b':') {
            return parse_ipv6(input);
        }
        // UTS 46 first (as WHATWG does): it lowercases and maps full-width digits and dots, so
        // `１２７.０.０.１` is recognised as the IPv4 literal it becomes. A name it would pass
        // through unchanged skips it (the per-request common case; tested to agree).
        let mapped;
        let ascii = if is_already_ascii(input) {
            input
        } else {
            mapped = idna::domain_to_ascii(input)
                .map_err(|_| HostError::InvalidName("not a valid internationalized domain name"))?;
            mapped.as_str()
        };
        let name = ascii.strip_suffix('.').unwrap_or(ascii);
        if name.is_empty() {
            return Err(HostError::Empty);
        }
        if ends_in_number(name) {
            return parse_ipv4(name).map(|v4| Host::Ip(IpAddr::V4(v4)));
        }
        validate_name(name)?;
        Ok(Host::Name(name.to_owned()))
    }

    /// The name, if this is not an IP address.
    pub fn as_name(&self) -> Option<&str> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }

    /// The address, if this is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }

    /// `host:port` with IPv6 bracketed, as used in CONNECT lines and denial messages.
    pub fn authority(&self, port: u16) -> String {
        match self {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            other => format!("{other}:{port}"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Maps `::ffff:a.b.c.d` to IPv4 so every check sees one form; other embeddings (NAT64, 6to4)
/// stay IPv6 and are handled by the SSRF guard.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Splits and normalizes an authority `host[:port]` (IPv6 bracketed); a missing port means
/// `default_port`. Userinfo and empty ports are rejected.
pub fn parse_authority(authority: &str, default_port: u16) -> Result<(Host, u16), HostError> {
    let (host, port) = split_authority(authority, default_port)?;
    Ok((Host::parse(host)?, port))
}

/// Whether `parse_authority(authority, default_port)` yields `(host, port)`. A name spelled
/// exactly as `host` already is, that `Host::parse` would take as it stands (the fast path's
/// conditions and the same checks), is compared without building a `Host`: every request in a
/// tunnel names its host in this form.
pub fn authority_is(authority: &str, default_port: u16, host: &Host, port: u16) -> bool {
    if let (Host::Name(name), Ok((h, p))) = (host, split_authority(authority, default_port)) {
        if h == name && is_already_ascii(h) && !ends_in_number(h) && validate_name(h).is_ok() {
            return p == port;
        }
    }
    parse_authority(authority, default_port).is_ok_and(|(h, p)| h == *host && p == port)
}

/// The host part (unparsed) and port of an authority; the port checks of `parse_authority`.
fn split_authority(authority: &str, default_port: u16) -> Result<(&str, u16), HostError> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(HostError::InvalidIpv6)?;
        let (h, rest) = authority.split_at(close + 1);
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if rest.is_empty() => (h, None),
            None => return Err(HostError::InvalidIpv6),
        }
    } else {
        // A byte search: `split_once(':')` goes through the generic pattern searcher, which
        // costs more than the whole walk of a short authority.
        match authority.bytes().position(|b| b == b':') {
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map_err(|_| HostError::InvalidPort)?
        }
        Some(_) => return Err(HostError::InvalidPort),
    };
    if port == 0 {
        return Err(HostError::InvalidPort);
    }
    Ok((host, port))
}

/// Whether UTS 46 maps `input` to itself: lower-case letters, digits, `-`, `_` and dots, and no
/// label starting `xn--` (punycode is decoded and checked). Everything else goes through `idna`.
/// Labels are split on bytes here and below: `str::split('.')` sets up a generic searcher per
/// call, which cost more than the checks on a short name.
fn is_already_ascii(input: &str) -> bool {
    input.as_bytes().split(|&c| c == b'.').all(|label| {
        !label.starts_with(b"xn--")
            && label
                .iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
    })
}

fn parse_ipv6(s: &str) -> Result<Host, HostError> {
    if s.contains('%') {
        return Err(HostError::ZoneId);
    }
    let v6: Ipv6Addr = s.parse().map_err(|_| HostError::InvalidIpv6)?;
    Ok(Host::Ip(canonical_ip(IpAddr::V6(v6))))
}

fn validate_name(name: &str) -> Result<(), HostError> {
    if name.len() > MAX_NAME_LEN {
        return Err(HostError::InvalidName("longer than 253 characters"));
    }
    for label in name.as_bytes().split(|&b| b == b'.') {
        if label.is_empty() {
            return Err(HostError::InvalidName("empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::InvalidName("label longer than 63 characters"));
        }
        // Underscores are not valid in host names but are common in container and service names
        // (Docker Compose `project_service_1`), so they are accepted.
        if !label
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(HostError::InvalidName(
                "only letters, digits, '-' and '_' are allowed in labels",
            ));
        }
        if label.starts_with(b"-") || label.ends_with(b"-") {
            return Err(HostError::InvalidName("label starts or ends with '-'"));
        }
    }
    Ok(())
}

/// WHATWG "ends in a number": the last label is all digits or parses as an IPv4 number.
fn ends_in_number(name: &str) -> bool {
    let last = match name.bytes().rposition(|b| b == b'.') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    if last.is_empty() {
        return false;
    }
    last.bytes().all(|b| b.is_ascii_digit()) || parse_ipv4_number(last).is_some()
}

/// One IPv4 part: `0x`/`0X` prefix → hex, leading `0` → octal, else decimal. `None` if invalid.
fn parse_ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(h) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (h, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    // Longer than any valid address: treat as a number that is too large (invalid IPv4).
    u64::from_str_radix(digits, radix).ok().or(Some(u64::MAX))
}

/// WHATWG IPv4 parser: 1 to 4 parts, all but the last ≤ 255, the last filling the remaining bytes.
fn parse_ipv4(name: &str) -> Result<Ipv4Addr, HostError> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 4 {
        return Err(HostError::InvalidIpv4);
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for p in &parts {
        numbers.push(parse_ipv4_number(p).ok_or(HostError::InvalidIpv4)?);
    }
    let (last, init) = numbers.split_last().ok_or(HostError::InvalidIpv4)?;
    if init.iter().any(|n| *n > 255) {
        return Err(HostError::InvalidIpv4);
    }
    let remaining_bytes = 5 - numbers.len() as u32;
    if *last >= 256u64.pow(remaining_bytes) {
        return Err(HostError::InvalidIpv4);
    }
    let mut addr = *last;
    for (i, n) in init.iter().enumerate() {
        addr += n << (8 * (3 - i as u32));
    }
    let addr = u32::try_from(addr).map_err(|_| HostError::InvalidIpv4)?;
    Ok(Ipv4Addr::from(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn ipv4_notations_normalize() {
        let table = [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0X7F000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0177.0.0.01", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
            ("127.0.0.1.", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("0x", "0.0.0.0"),
            ("10.0.258", "10.0.1.2"),
            ("169.254.43518", "169.254.169.254"),
            ("0xa9fea9fe", "169.254.169.254"),
            ("4294967295", "255.255.255.255"),
            ("１２７.０.０.１", "127.0.0.1"),
            ("192.168.0.1", "192.168.0.1"),
        ];
        for (input, want) in table {
            assert_eq!(Host::parse(input), Ok(ip(want)), "{input}");
        }
    }

    #[test]
    fn invalid_ipv4_is_not_a_name() {
        for input in [
            "4294967296",
            "256.0.0.1",
            "1.2.3.4.5",
            "1.2.3.256",
            "0x100000000",
            "08.0.0.1",
            "example.123",
            "1.2.3.09",
            "99999999999999999999999",
            "1..2",
        ] {
            assert!(Host::parse(input).is_err(), "{input} should be rejected");
        }
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(Host::parse("[::1]"), Ok(ip("::1")));
        assert_eq!(Host::parse("::1"), Ok(ip("::1")));
        assert_eq!(Host::parse("[::ffff:127.0.0.1]"), Ok(ip("127.0.0.1")));
        assert_eq!(Host::parse("[::ffff:7f00:1]"), Ok(ip("127.0.0.1")));
        assert_eq!(Host::parse("[64:ff9b::7f00:1]"), Ok(ip("64:ff9b::7f00:1")));
        assert_eq!(Host::parse("[FD00::1]"), Ok(ip("fd00::1")));
        assert_eq!(Host::parse("[fe80::1%eth0]"), Err(HostError::ZoneId));
        assert_eq!(Host::parse("[fe80::1%25eth0]"), Err(HostError::ZoneId));
        assert_eq!(Host::parse("[::1"), Err(HostError::InvalidIpv6));
        assert_eq!(Host::parse("[example.com]"), Err(HostError::InvalidIpv6));
        assert_eq!(Host::parse("[1.2.3.4]"), Err(HostError::InvalidIpv6));
    }

    #[test]
    fn names_normalize() {
        let table = [
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("my_service_1", "my_service_1"),
            ("1.2.3.4.example.com", "1.2.3.4.example.com"),
            ("0x7f.example", "0x7f.example"),
        ];
        for (input, want) in table {
            assert_eq!(Host::parse(input), Ok(Host::Name(want.into())), "{input}");
        }
    }

    #[test]
    fn invalid_names() {
        let long_label = "a".repeat(64);
        let long_name = format!("{}.com", "a.".repeat(130));
        for input in [
            "",
            ".",
            "example..com",
            "example.com..",
            ".example.com",
            "exa mple.com",
            "ex*ample.com",
            "*.example.com",
            "-bad.example",
            "bad-.example",
            "a/b",
            "user@host",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(Host::parse(input).is_err(), "{input:?} should be rejected");
        }
    }

    /// The fast path must agree with `idna` on every input it takes: generated names over its
    /// alphabet (dots, hyphens, digits, underscores, `xn--` pieces) in every arrangement.
    #[test]
    fn ascii_fast_path_agrees_with_idna() {
        let pieces = [
            "a", "z", "0", "9", "-", "_", ".", "xn--", "xn", "--", "0x", "1",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        for _ in 0..50_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut r = seed;
            for _ in 0..(r % 9) {
                r /= 9;
                s.push_str(pieces[(r % pieces.len() as u64) as usize]);
                r /= pieces.len() as u64;
            }
            if s.is_empty() || !is_already_ascii(&s) {
                continue;
            }
            checked += 1;
            assert_eq!(
                idna::domain_to_ascii(&s).ok().as_deref(),
                Some(s.as_str()),
                "{s:?}"
            );
        }
        assert!(checked > 10_000, "{checked}");
        assert!(!is_already_ascii("Example.com"));
        assert!(!is_already_ascii("xn--bcher-kva.example"));
        assert!(!is_already_ascii("bücher.example"));
    }

    #[test]
    fn authorities() {
        let ok = [
            ("example.com", ("example.com", 443)),
            ("EXAMPLE.com.:443", ("example.com", 443)),
            ("example.com:8443", ("example.com", 8443)),
            ("[::1]:8443", ("::1", 8443)),
            ("[::1]", ("::1", 443)),
            ("0x7f.1:80", ("127.0.0.1", 80)),
        ];
        for (input, (h, p)) in ok {
            assert_eq!(
                parse_authority(input, 443),
                Ok((Host::parse(h).unwrap(), p)),
                "{input}"
            );
        }
        for bad in [
            "",
            "example.com:",
            "example.com:0",
            "example.com:99999",
            "user@example.com",
            "::1",
            "[::1]x",
            "example.com:+1",
            "a:b:c",
        ] {
            assert!(parse_authority(bad, 443).is_err(), "{bad}");
        }
    }

    #[test]
    fn authority_is_agrees_with_parse_authority() {
        let hosts = [
            Host::Name("example.com".into()),
            Host::Name("example.com.".into()),
            Host::Name("xn--bcher-kva.example".into()),
            Host::Name("my_service_1".into()),
            Host::Name("1.2".into()),
            Host::Name("-bad".into()),
            ip("127.0.0.1"),
            ip("::1"),
        ];
        let authorities = [
            "example.com",
            "example.com:443",
            "example.com:8443",
            "EXAMPLE.com",
            "example.com.:443",
            "example.com.",
            "xn--bcher-kva.example",
            "bücher.example:443",
            "my_service_1:443",
            "1.2",
            "-bad",
            "127.0.0.1",
            "0x7f.1:443",
            "[::1]:443",
            "example.com:0",
            "example.com:",
            "",
        ];
        for h in &hosts {
            for a in authorities {
                for port in [443, 8443] {
                    let want = parse_authority(a, 443).is_ok_and(|(x, p)| x == *h && p == port);
                    assert_eq!(authority_is(a, 443, h, port), want, "{a:?} {h:?} {port}");
                }
            }
        }
    }

    #[test]
    fn authority_brackets_ipv6() {
        assert_eq!(ip("::1").authority(443), "[::1]:443");
        assert_eq!(ip("10.0.0.1").authority(80), "10.0.0.1:80");
        assert_eq!(Host::Name("a.b".into()).authority(8443), "a.b:8443");
    }
}
