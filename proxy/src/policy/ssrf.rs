//! Address classes the proxy refuses to dial (the SSRF guard).
//!
//! An allowlisted *name* says nothing about where it points: DNS can answer `127.0.0.1`,
//! `169.254.169.254` or a container on the bottle network. Every address a name resolves to is
//! classified here, including IPv6 forms that embed an IPv4 address (mapped, translated, NAT64,
//! 6to4), because the kernel or a gateway turns those back into the IPv4 destination.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// Human-readable class, stable wording (used in denial bodies and the audit).
    pub class: &'static str,
    /// Not dialable even with an explicit exemption (unspecified, multicast, broadcast): connecting
    /// to `0.0.0.0` reaches the local host on Linux, and group addresses are never a service.
    pub never: bool,
    /// For IPv6 forms that embed an IPv4 address: the form and the embedded address that was
    /// classified.
    pub embedded: Option<(&'static str, Ipv4Addr)>,
}

struct Class<N> {
    net: N,
    class: &'static str,
    never: bool,
}

const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    len: u8,
    class: &'static str,
    never: bool,
) -> Class<Ipv4Net> {
    Class {
        net: Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len),
        class,
        never,
    }
}

pub const LOOPBACK: &str = "loopback";
pub const PRIVATE: &str = "private network (RFC 1918)";
pub const LINK_LOCAL_V4: &str = "link-local / cloud metadata (169.254.0.0/16)";

/// Order matters only where ranges nest (broadcast inside 240/4).
const V4_CLASSES: &[Class<Ipv4Net>] = &[
    v4(0, 0, 0, 0, 8, "\"this network\" (0.0.0.0/8)", true),
    v4(10, 0, 0, 0, 8, PRIVATE, false),
    v4(
        100,
        64,
        0,
        0,
        10,
        "carrier-grade NAT (100.64.0.0/10)",
        false,
    ),
    v4(127, 0, 0, 0, 8, LOOPBACK, false),
    v4(169, 254, 0, 0, 16, LINK_LOCAL_V4, false),
    v4(172, 16, 0, 0, 12, PRIVATE, false),
    v4(
        192,
        0,
        0,
        0,
        24,
        "IETF protocol assignments (192.0.0.0/24)",
        false,
    ),
    v4(192, 168, 0, 0, 16, PRIVATE, false),
    v4(198, 18, 0, 0, 15, "benchmarking (198.18.0.0/15)", false),
    // Looks public, but on Azure it is the host's WireServer (instance metadata, extension
    // config): the cloud-metadata target that the link-local range does not cover.
    v4(
        168,
        63,
        129,
        16,
        32,
        "Azure WireServer (168.63.129.16)",
        false,
    ),
    v4(224, 0, 0, 0, 4, "multicast", true),
    v4(255, 255, 255, 255, 32, "broadcast", true),
    v4(240, 0, 0, 0, 4, "reserved (240.0.0.0/4)", false),
];

const fn v6(segs: [u16; 8], len: u8, class: &'static str, never: bool) -> Class<Ipv6Net> {
    let [a, b, c, d, e, f, g, h] = segs;
    Class {
        net: Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len),
        class,
        never,
    }
}

/// Ranges blocked outright (no embedded IPv4 to look at).
const V6_CLASSES: &[Class<Ipv6Net>] = &[
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        128,
        "unspecified address (::)",
        true,
    ),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, LOOPBACK, false),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "NAT64 local-use (64:ff9b:1::/48)",
        false,
    ),
    v6(
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        "discard-only (100::/64)",
        false,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        32,
        "Teredo tunnel (2001::/32)",
        false,
    ),
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "unique local (fc00::/7)",
        false,
    ),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "link-local (fe80::/10)",
        false,
    ),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "site-local (fec0::/10, deprecated)",
        false,
    ),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast", true),
];

/// The class of a blocked address, or `None` if it may be dialed.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    classify(ip).map(|b| b.class)
}

/// Full classification, including the embedded IPv4 address for IPv6 transition forms.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    V4_CLASSES
        .iter()
        .find(|c| c.net.contains(&ip))
        .map(|c| Blocked {
            class: c.class,
            never: c.never,
            embedded: None,
        })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    if let Some(c) = V6_CLASSES.iter().find(|c| c.net.contains(&ip)) {
        return Some(Blocked {
            class: c.class,
            never: c.never,
            embedded: None,
        });
    }
    let (form, v4) = embedded_ipv4(ip)?;
    match classify_v4(v4) {
        Some(inner) => Some(Blocked {
            class: inner.class,
            never: inner.never,
            embedded: Some((form, v4)),
        }),
        // The deprecated IPv4-compatible form has no legitimate use as a destination.
        None if form == IPV4_COMPATIBLE => Some(Blocked {
            class: "IPv4-compatible IPv6 (::/96, deprecated)",
            never: false,
            embedded: Some((form, v4)),
        }),
        None => None,
    }
}

const IPV4_COMPATIBLE: &str = "IPv4-compatible";

/// The IPv4 address embedded in a transition form, with the form's name.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let s = ip.segments();
    let low32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(("IPv4-mapped", low32)),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(("IPv4-translated", low32)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(("NAT64", low32)),
        [0x2002, a, b, ..] => Some((
            "6to4",
            Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8),
        )),
        [0, 0, 0, 0, 0, 0, _, _] => Some((IPV4_COMPATIBLE, low32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        blocked_reason(s.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        let blocked = [
            ("0.0.0.0", "\"this network\" (0.0.0.0/8)"),
            ("0.1.2.3", "\"this network\" (0.0.0.0/8)"),
            ("10.0.0.5", PRIVATE),
            ("10.255.255.255", PRIVATE),
            ("100.64.0.7", "carrier-grade NAT (100.64.0.0/10)"),
            ("100.127.255.255", "carrier-grade NAT (100.64.0.0/10)"),
            ("127.0.0.1", LOOPBACK),
            ("127.255.0.9", LOOPBACK),
            ("169.254.169.254", LINK_LOCAL_V4),
            ("168.63.129.16", "Azure WireServer (168.63.129.16)"),
            ("172.16.0.1", PRIVATE),
            ("172.31.255.255", PRIVATE),
            ("192.0.0.170", "IETF protocol assignments (192.0.0.0/24)"),
            ("192.168.1.1", PRIVATE),
            ("198.18.0.1", "benchmarking (198.18.0.0/15)"),
            ("198.19.255.255", "benchmarking (198.18.0.0/15)"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved (240.0.0.0/4)"),
            ("255.255.255.254", "reserved (240.0.0.0/4)"),
            ("255.255.255.255", "broadcast"),
        ];
        for (ip, want) in blocked {
            assert_eq!(reason(ip), Some(want), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "169.253.255.255",
            "93.184.216.34",
            "203.0.113.5",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes() {
        let blocked = [
            ("::", "unspecified address (::)"),
            ("::1", LOOPBACK),
            ("fc00::1", "unique local (fc00::/7)"),
            ("fd12:3456::1", "unique local (fc00::/7)"),
            ("fe80::1", "link-local (fe80::/10)"),
            ("febf::1", "link-local (fe80::/10)"),
            ("fec0::1", "site-local (fec0::/10, deprecated)"),
            ("ff02::1", "multicast"),
            ("100::1", "discard-only (100::/64)"),
            ("2001::1", "Teredo tunnel (2001::/32)"),
            ("64:ff9b:1::a00:1", "NAT64 local-use (64:ff9b:1::/48)"),
        ];
        for (ip, want) in blocked {
            assert_eq!(reason(ip), Some(want), "{ip}");
        }
        for ip in [
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
            "fe00::1",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_checked() {
        let cases = [
            ("::ffff:127.0.0.1", "IPv4-mapped", LOOPBACK),
            ("::ffff:169.254.169.254", "IPv4-mapped", LINK_LOCAL_V4),
            ("::ffff:0:10.0.0.1", "IPv4-translated", PRIVATE),
            ("64:ff9b::127.0.0.1", "NAT64", LOOPBACK),
            ("64:ff9b::a9fe:a9fe", "NAT64", LINK_LOCAL_V4),
            ("2002:7f00:1::", "6to4", LOOPBACK),
            ("2002:c0a8:101::1", "6to4", PRIVATE),
            ("::127.0.0.1", "IPv4-compatible", LOOPBACK),
            ("::10.0.0.1", "IPv4-compatible", PRIVATE),
        ];
        for (ip, form, class) in cases {
            let b = classify(ip.parse().unwrap()).unwrap_or_else(|| panic!("{ip} not blocked"));
            assert_eq!(b.class, class, "{ip}");
            assert_eq!(b.embedded.map(|e| e.0), Some(form), "{ip}");
        }
        // Embedded public addresses are fine, except the deprecated compatible form.
        assert_eq!(reason("::ffff:8.8.8.8"), None);
        assert_eq!(reason("64:ff9b::808:808"), None);
        assert_eq!(reason("2002:808:808::1"), None);
        assert_eq!(
            reason("::8.8.8.8"),
            Some("IPv4-compatible IPv6 (::/96, deprecated)")
        );
    }

    #[test]
    fn never_dialable() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "ff02::1",
            "::ffff:0.0.0.0",
        ] {
            assert!(classify(ip.parse().unwrap()).unwrap().never, "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "fd00::1"] {
            assert!(!classify(ip.parse().unwrap()).unwrap().never, "{ip}");
        }
    }
}
