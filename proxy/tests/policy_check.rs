//! `Policy::check` through the public API: entry and port semantics, IP-literal notations,
//! modes, implied route/inject hosts, denial bodies and `describe`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_proxy::config::Config;
use egress_proxy::policy::{DenyReason, Mode, Policy};
use std::path::Path;

fn policy(src: &str) -> Policy {
    Policy::from_config(&Config::from_toml_str(src, Path::new("/")).unwrap())
}

const BASE: &str = r#"
routes_listen = "127.0.0.1:9099"
[egress]
allow = ["example.com", "*.example.org", "api.example.net:8443", "db.example.net:*",
         "10.1.2.0/24:5432", "203.0.113.7", "[fd00::]/8:443", "127.0.0.1:8080", "*.cdn.example.com"]
passthrough = ["pinned.example.com:443", "*.example.com", "exact.cdn.example.com"]
[[routes]]
path = "/anthropic/"
upstream = "https://api.anthropic.com"
token_env = "T"
[[inject]]
host = "api.openai.com"
header = "Authorization"
placeholder = "bottle-placeholder-openai"
token_env = "O"
"#;

#[test]
fn hosts_and_ports() {
    let p = policy(BASE);
    let allowed = [
        ("example.com", 443),
        ("example.com", 80),
        ("EXAMPLE.COM.", 443),
        ("example.org", 443),
        ("deep.sub.example.org", 80),
        ("api.example.net", 8443),
        ("db.example.net", 5432),
        ("db.example.net", 1),
        ("api.anthropic.com", 443),
        ("api.openai.com", 443),
    ];
    for (h, port) in allowed {
        assert!(p.check(h, port).is_ok(), "{h}:{port} should be allowed");
    }
    let denied = [
        ("example.com", 8443),
        ("www.example.net", 443),
        ("api.example.net", 443),
        ("example.org.evil.com", 443),
        ("notexample.org", 443),
        ("api.anthropic.com", 80),
        ("api.openai.com", 8443),
        ("evil.example", 443),
    ];
    for (h, port) in denied {
        let d = p.check(h, port).expect_err(h);
        assert_eq!(d.status(), 403, "{h}:{port}");
        assert!(
            matches!(d.reason, DenyReason::NotAllowed { .. }),
            "{h}:{port}: {:?}",
            d.reason
        );
    }
}

#[test]
fn ip_literals_in_any_notation_match_only_explicit_entries() {
    let p = policy(BASE);
    // 127.0.0.1:8080 is listed explicitly: every notation of it is allowed, on that port only.
    for h in [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0x7f.1",
        "[::ffff:127.0.0.1]",
        "::ffff:7f00:1",
    ] {
        let t = p
            .check(h, 8080)
            .unwrap_or_else(|d| panic!("{h}: {}", d.body()));
        assert_eq!(t.host.to_string(), "127.0.0.1");
        assert!(
            t.private_exempt(),
            "explicit IP entries exempt the address on their port"
        );
        assert_eq!(t.matched_entry, "127.0.0.1:8080");
        let d = p.check(h, 80).unwrap_err();
        assert!(
            d.body().contains("blocked CONNECT to 127.0.0.1:80"),
            "{}",
            d.body()
        );
        assert!(
            d.body().contains("warning: 127.0.0.1 is a private address"),
            "{}",
            d.body()
        );
    }
    let t = p.check("0x0a.1.2.9", 5432).unwrap();
    assert_eq!(
        (t.host.to_string(), t.matched_entry.as_str()),
        ("10.1.2.9".into(), "10.1.2.0/24:5432")
    );
    assert!(p.check("10.1.3.9", 5432).is_err());
    assert!(p.check("[fd12::1]", 443).unwrap().private_exempt());
    assert!(p.check("203.0.113.7", 443).is_ok());
    // The metadata address is not listed, in no notation.
    for h in [
        "169.254.169.254",
        "0xa9fea9fe",
        "2852039166",
        "169.254.43518",
        "[::ffff:169.254.169.254]",
    ] {
        let d = p.check(h, 80).unwrap_err();
        assert_eq!(d.host, "169.254.169.254");
        assert!(matches!(d.reason, DenyReason::NotAllowed { .. }));
    }
    // Names never match IP entries, IPs never match name entries.
    assert!(policy("[egress]\nallow = [\"*.example.com\"]")
        .check("93.184.216.34", 443)
        .is_err());
}

#[test]
fn invalid_hosts_are_400() {
    let p = policy(BASE);
    for h in [
        "",
        "1.2.3.256",
        "[fe80::1%eth0]",
        "exa mple.com",
        "a..b",
        "0x100000000",
        "[::1",
    ] {
        let d = p.check(h, 443).expect_err(h);
        assert_eq!(d.status(), 400, "{h:?}");
        assert!(matches!(d.reason, DenyReason::InvalidHost(_)), "{h:?}");
    }
    assert_eq!(p.check("example.com", 0).unwrap_err().status(), 400);
}

#[test]
fn never_dialable_addresses_are_refused_even_when_listed() {
    let p = policy("[egress]\nallow = [\"224.0.0.0/8:*\", \"0.0.0.0/8:*\"]");
    for h in ["0.0.0.0", "0", "224.0.0.1"] {
        let d = p.check(h, 80).unwrap_err();
        assert!(matches!(d.reason, DenyReason::NeverDialable { .. }), "{h}");
    }
    // Unlisted, they are refused the same way, with no allow entry suggested (none would work).
    let p = policy("[egress]\nallow = []");
    for h in ["0.0.0.0", "0", "224.0.0.1", "255.255.255.255"] {
        let d = p.check(h, 443).unwrap_err();
        assert!(matches!(d.reason, DenyReason::NeverDialable { .. }), "{h}");
        assert!(d.hint.is_empty(), "{h}: {}", d.hint);
    }
}

#[test]
fn modes_follow_the_most_specific_entry() {
    let p = policy(BASE);
    let mode = |h: &str, port| p.check(h, port).unwrap().mode;
    // Exact `example.com` (allow) beats `*.example.com` (passthrough); subdomains pass through.
    assert_eq!(mode("example.com", 443), Mode::Intercept);
    assert_eq!(mode("www.example.com", 443), Mode::Passthrough);
    assert_eq!(mode("pinned.example.com", 443), Mode::Passthrough);
    // Longer wildcard wins; exact passthrough beats it.
    assert_eq!(mode("x.cdn.example.com", 443), Mode::Intercept);
    assert_eq!(mode("exact.cdn.example.com", 443), Mode::Passthrough);
    // Same entry in both lists: interception wins (fail closed).
    let tie = policy("[egress]\nallow = [\"a.example\"]\npassthrough = [\"a.example\"]");
    assert_eq!(tie.check("a.example", 443).unwrap().mode, Mode::Intercept);
    // Route and inject hosts are always intercepted.
    assert_eq!(mode("api.anthropic.com", 443), Mode::Intercept);
    assert_eq!(
        p.check("api.anthropic.com", 443).unwrap().matched_entry,
        "api.anthropic.com:443 (route /anthropic/)"
    );
    assert_eq!(
        p.check("api.openai.com", 443).unwrap().matched_entry,
        "api.openai.com:443 (inject)"
    );
    let t = p.check("api.openai.com", 443).unwrap();
    assert_eq!(p.injections_for(&t).count(), 1);
    assert_eq!(
        p.injections_for(&p.check("example.com", 443).unwrap())
            .count(),
        0
    );
}

#[test]
fn denial_bodies_say_how_to_allow() {
    let p = policy(BASE);
    let d = p.check("evil.example", 443).unwrap_err();
    assert_eq!(
        d.body(),
        "egress-proxy: blocked CONNECT to evil.example:443\n\
         reason: host not in allowlist\n\
         to allow it, add to the bottle manifest:  egress.allowlist: [\"evil.example\"]\n\
         or to the proxy config [egress] allow:    \"evil.example\"\n"
    );
    let d = p.check("Evil.Example", 8443).unwrap_err();
    assert!(
        d.body()
            .contains("egress.allowlist: [\"evil.example:8443\"]"),
        "{}",
        d.body()
    );
    let d = p.check("example.com", 8443).unwrap_err();
    assert!(d.body().contains("reason: port 8443 not in allowlist for this host (entry \"example.com\" allows other ports)"), "{}", d.body());
    let d = p.check("[2001:db8::1]", 443).unwrap_err();
    assert!(
        d.body().contains("blocked CONNECT to [2001:db8::1]:443"),
        "{}",
        d.body()
    );
    assert!(
        d.body().contains("allow:    \"[2001:db8::1]\""),
        "{}",
        d.body()
    );
    assert!(d
        .body_for("GET")
        .starts_with("egress-proxy: blocked GET to [2001:db8::1]:443\n"));
}

#[test]
fn authority_comparisons_normalize() {
    let p = policy(BASE);
    let t = p.check("example.com", 443).unwrap();
    assert!(p.same_target("EXAMPLE.com.", 443, &t));
    assert!(p.same_target("example.com:443", 443, &t));
    assert!(!p.same_target("example.com:8443", 443, &t));
    assert!(!p.same_target("www.example.com", 443, &t));
    assert!(!p.same_target("user@example.com", 443, &t));
    let t = p.check("127.1", 8080).unwrap();
    assert!(p.same_target("[::ffff:127.0.0.1]:8080", 443, &t));
    assert!(p.same_authority("Example.com", "example.com:80", 80));
    assert!(!p.same_authority("example.com", "example.com:8080", 80));
    assert!(!p.same_authority("example.com", "example.org", 80));
}

#[test]
fn describe_lists_everything_without_secrets() {
    let p = policy(&BASE.replace(
        "[egress]\n",
        "[upstream.hosts]\n\"git.internal\" = \"100.64.0.7\"\n[egress]\nallow_private = [\"100.64.0.0/10\"]\n",
    ));
    let text = p.describe();
    for needle in [
        "intercept   example.com",
        "*.example.org",
        "matches example.org and every subdomain",
        "passthrough pinned.example.com:443",
        "10.1.2.0/24:5432",
        "port 5432",
        "ports 80, 443",
        "any port",
        "[route /anthropic/]",
        "100.64.0.0/10",
        "git.internal -> 100.64.0.7",
        "/anthropic/ -> https://api.anthropic.com  Authorization: Bearer <$T>",
        "api.openai.com:443 header authorization: \"bottle-placeholder-openai\" -> <$O>",
        "dlp: mode block",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(policy("")
        .describe()
        .contains("(none: every destination is denied)"));
}

/// A file-sourced token is listed by its path (the launcher's way), never read for the listing.
#[test]
fn describe_names_token_files_by_path() {
    let text = policy(&BASE.replace(
        "token_env = \"O\"",
        "token_file = \"/run/bottle-secrets/O\"",
    ))
    .describe();
    let line =
        "header authorization: \"bottle-placeholder-openai\" -> <file /run/bottle-secrets/O>";
    assert!(text.contains(line), "missing {line:?} in\n{text}");
    assert!(text.contains("Authorization: Bearer <$T>"), "{text}");
}
