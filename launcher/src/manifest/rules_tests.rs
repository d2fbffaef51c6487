use super::*;

#[test]
fn manifest_names() {
    for ok in ["a", "dev", "my-agent-2", "x9"] {
        assert!(manifest_name(ok), "{ok}");
    }
    for bad in ["", "Dev", "1abc", "-a", "a_b", "a.b", "ä", "a b"] {
        assert!(!manifest_name(bad), "{bad}");
    }
}

#[test]
fn allow_entries_normalize() {
    let cases = [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("*.Example.org", "*.example.org"),
        ("api.example.net:8443", "api.example.net:8443"),
        ("git.example.com:*", "git.example.com:*"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("10.1.2.0/24:5432", "10.1.2.0/24:5432"),
        ("10.1.2.3", "10.1.2.3"),
        ("fd00::1", "fd00::1"),
        ("[fd00::1]:443", "[fd00::1]:443"),
        ("  spaced.example  ", "spaced.example"),
    ];
    for (raw, want) in cases {
        assert_eq!(allow_entry(raw).as_deref(), Ok(want), "{raw}");
    }
}

#[test]
fn allow_entries_refused() {
    for bad in [
        "*",
        "*.com",
        "*.",
        "https://example.com",
        "example.com/path",
        "ex*ample.com",
        "example.com:0",
        "example.com:99999",
        "example.com:http",
        "a..b",
        "10.1.2.0/33",
        "",
    ] {
        assert!(allow_entry(bad).is_err(), "{bad} -> {:?}", allow_entry(bad));
    }
}

#[test]
fn roles_parse_with_did_you_mean() {
    assert_eq!(Role::parse("npm-registry"), Ok(Role::NpmRegistry));
    let e = Role::parse("anthropic-base-ur").unwrap_err();
    assert!(e.contains("did you mean `anthropic-base-url`"), "{e}");
    assert!(Role::AnthropicBaseUrl.is_singleton());
    assert!(Role::NpmRegistry.is_singleton());
    assert!(Role::TeaLogin.is_singleton());
    assert!(!Role::GitInsteadof.is_singleton());
}

#[test]
fn env_names() {
    assert!(env_name("FOO_BAR1").is_ok());
    assert!(env_name("_x").is_ok());
    assert!(env_name("1X").is_err());
    assert!(env_name("A-B").is_err());
    let e = env_name("HTTPS_PROXY").unwrap_err();
    assert!(e.contains("set by claude-bottle"), "{e}");
}

#[test]
fn route_paths() {
    assert_eq!(route_path("/anthropic/").as_deref(), Ok("/anthropic/"));
    assert_eq!(route_path("/npm").as_deref(), Ok("/npm/"));
    for bad in ["anthropic/", "/", "/a/../b/", "/a b/", "/a?x"] {
        assert!(route_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn upstream_hosts() {
    assert_eq!(
        upstream_host("https://api.anthropic.com").as_deref(),
        Ok("api.anthropic.com")
    );
    assert_eq!(
        upstream_host("https://registry.npmjs.org/").as_deref(),
        Ok("registry.npmjs.org")
    );
    assert_eq!(
        upstream_host("https://Git.Example.com:8443/api/v1").as_deref(),
        Ok("git.example.com:8443")
    );
    assert_eq!(
        upstream_host("https://example.com:443/x").as_deref(),
        Ok("example.com")
    );
    for bad in [
        "http://api.anthropic.com",
        "api.anthropic.com",
        "https://user:pw@example.com/",
        "https://*.example.com/",
        "https:///path",
    ] {
        assert!(upstream_host(bad).is_err(), "{bad}");
    }
}

#[test]
fn auth_schemes_and_remote_names() {
    assert!(auth_scheme("Bearer").is_ok());
    assert!(auth_scheme("token").is_ok());
    assert!(auth_scheme("Bearer x").is_err());
    assert!(auth_scheme("").is_err());
    assert!(remote_name("origin").is_ok());
    assert!(remote_name("-x").is_err());
    assert!(remote_name("a/b").is_err());
}

#[test]
fn extra_hosts() {
    assert_eq!(
        extra_host("Git.Internal", "100.64.0.7"),
        Ok(("git.internal".to_owned(), "100.64.0.7".to_owned()))
    );
    assert!(extra_host("git.internal", "not-an-ip").is_err());
    assert!(extra_host("*.internal", "10.0.0.1").is_err());
}
