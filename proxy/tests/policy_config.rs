//! Config loading through the public API: the issue's example config, relative paths, strict
//! keys with did-you-mean and line numbers, value errors naming the key, and secrets hygiene.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_proxy::config::{AuditTarget, Config, ConfigError, DlpMode};
use egress_proxy::policy::Host;
use secrecy::ExposeSecret;
use std::path::Path;

const FULL: &str = r#"
listen = "127.0.0.1:3128"
admin_listen = "127.0.0.1:9090"
routes_listen = "0.0.0.0:9099"
audit = "logs/audit.jsonl"
[ca]
cert = "ca.pem"
key = "/etc/bottle/ca.key"
[egress]
allow = ["example.com", "*.example.org", "api.example.net:8443", "10.1.2.0/24:5432"]
passthrough = ["pinned.example.com:443"]
allow_private = ["100.64.0.0/10", "[fd00::]/8"]
[upstream]
extra_roots = ["roots/internal.pem"]
nameservers = ["127.0.0.53", "[::1]:5353"]
[upstream.hosts]
"Git.Internal." = "100.64.0.7"
[dlp]
mode = "warn"
disable_rules = ["jwt"]
warn_rules = ["generic-api-key"]
exempt_hosts = ["uploads.example.com"]
known_secret_env = ["EXTRA_SECRET"]
[[routes]]
path = "/anthropic/"
upstream = "https://api.anthropic.com"
auth_scheme = "Bearer"
token_env = "CLAUDE_BOTTLE_OAUTH_TOKEN"
[[routes]]
path = "/anthropic-beta"
upstream = "https://api.anthropic.com/beta"
token_env = "CLAUDE_BOTTLE_OAUTH_TOKEN"
[[inject]]
host = "api.openai.com"
header = "Authorization"
placeholder = "bottle-placeholder-openai"
token_env = "OPENAI_API_KEY"
require = false
"#;

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(src, Path::new("/srv/bottle"))
}

fn err(src: &str) -> String {
    parse(src)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn issue_example_parses_and_normalizes() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:3128");
    assert_eq!(c.admin_listen.unwrap().to_string(), "127.0.0.1:9090");
    assert_eq!(c.routes_listen.unwrap().to_string(), "0.0.0.0:9099");
    assert_eq!(
        c.audit,
        AuditTarget::File("/srv/bottle/logs/audit.jsonl".into())
    );
    let ca = c.ca.as_ref().unwrap();
    assert_eq!(ca.cert, Path::new("/srv/bottle/ca.pem"));
    assert_eq!(ca.key, Path::new("/etc/bottle/ca.key"));
    let allow: Vec<String> = c.egress.allow.iter().map(ToString::to_string).collect();
    assert_eq!(
        allow,
        [
            "example.com",
            "*.example.org",
            "api.example.net:8443",
            "10.1.2.0/24:5432"
        ]
    );
    assert_eq!(
        c.egress.passthrough[0].to_string(),
        "pinned.example.com:443"
    );
    assert_eq!(
        c.egress
            .allow_private
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["100.64.0.0/10", "fd00::/8"]
    );
    assert_eq!(
        c.upstream.extra_roots,
        [Path::new("/srv/bottle/roots/internal.pem")]
    );
    assert_eq!(
        c.upstream.hosts.get("git.internal").unwrap().to_string(),
        "100.64.0.7"
    );
    assert_eq!(
        c.upstream
            .nameservers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["127.0.0.53:53", "[::1]:5353"]
    );
    assert_eq!(c.dlp.mode, DlpMode::Warn);
    assert_eq!(c.dlp.rule_mode("jwt"), DlpMode::Off);
    assert_eq!(c.dlp.rule_mode("generic-api-key"), DlpMode::Warn);
    assert_eq!(c.dlp.rule_mode("github-pat"), DlpMode::Warn);
    assert!(c
        .dlp
        .is_exempt(&Host::parse("uploads.example.com").unwrap(), 443));
    assert!(!c.dlp.is_exempt(&Host::parse("example.com").unwrap(), 443));
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[1].path, "/anthropic-beta/");
    assert_eq!(c.routes[1].auth_scheme, "Bearer");
    assert_eq!(
        c.routes[1].upstream.to_string(),
        "https://api.anthropic.com/beta"
    );
    let (r, p) = c.find_route("/anthropic-beta/v1/messages").unwrap();
    assert_eq!(
        (r.path.as_str(), p.as_str()),
        ("/anthropic-beta/", "/beta/v1/messages")
    );
    let i = &c.inject[0];
    assert_eq!(
        (i.host.to_string(), i.port, i.header.as_str()),
        ("api.openai.com".into(), 443, "authorization")
    );
}

#[test]
fn load_resolves_relative_paths_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let path = dir.path().join("conf/proxy.toml");
    std::fs::write(&path, "[ca]\ncert = \"ca.pem\"\nkey = \"../keys/ca.key\"\n").unwrap();
    let c = Config::load(&path).unwrap();
    let ca = c.ca.unwrap();
    assert_eq!(ca.cert, dir.path().join("conf/ca.pem"));
    assert_eq!(ca.key, dir.path().join("conf/../keys/ca.key"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:3128", "listen defaults");
    assert!(
        c.egress.allow.is_empty(),
        "no allow entries: deny everything"
    );
    assert_eq!(c.audit, AuditTarget::Stdout);
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = Config::load(&missing).unwrap_err().to_string();
    assert!(e.contains("nope.toml"), "{e}");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 * 1024 * 1024))).unwrap();
    assert!(matches!(
        Config::load(&big),
        Err(ConfigError::TooLarge { .. })
    ));
}

#[test]
fn unknown_key_did_you_mean_with_line() {
    let src = "listen = \"127.0.0.1:3128\"\n\n[ca]\ncert = \"a\"\nkey = \"b\"\n[egress]\nalow = [\"example.com\"]\n";
    assert_eq!(
        err(src),
        "unknown key \"egress.alow\" (did you mean \"allow\"?) at line 7"
    );
}

#[test]
fn unknown_nested_keys() {
    assert_eq!(
        err("[upstream]\nextra_root = []\n"),
        "unknown key \"upstream.extra_root\" (did you mean \"extra_roots\"?) at line 2"
    );
    assert_eq!(
        err("[[inject]]\nhost = \"a.com\"\nheadr = \"x\"\n"),
        "unknown key \"inject[0].headr\" (did you mean \"header\"?) at line 3"
    );
    assert_eq!(
        err("[upstream.hostz]\n\"a\" = \"1.2.3.4\"\n"),
        "unknown key \"upstream.hostz\" (did you mean \"hosts\"?) at line 1"
    );
    assert_eq!(
        err("egress.passtrough = []"),
        "unknown key \"egress.passtrough\" (did you mean \"passthrough\"?) at line 1"
    );
    assert_eq!(
        err("\n\nallow = []"),
        "unknown key \"allow\" (did you mean \"egress.allow\"?) at line 3"
    );
    assert_eq!(err("[tls]\nx = 1"), "unknown key \"tls\" at line 1");
}

#[test]
fn invalid_values_name_key_and_line() {
    let src = "[egress]\nallow = [\n  \"example.com\",\n  \"api.example.net:8443\",\n  \"*\",\n]\n";
    let e = parse(src).unwrap_err();
    assert_eq!(e.key(), Some("egress.allow[2]"));
    assert_eq!(e.line(), Some(5));
    assert!(
        e.to_string()
            .starts_with("egress.allow[2]: \"*\" is too broad"),
        "{e}"
    );
    assert!(err("[egress]\npassthrough = [\"*.com\"]")
        .starts_with("egress.passthrough[0]: \"*.com\" is too broad"));
    assert!(
        err("[egress]\nallow_private = [\"0.0.0.0/0\"]").starts_with("egress.allow_private[0]:")
    );
    assert!(
        err("[egress]\nallow_private = [\"10.0.0.1/8\"]").contains("did you mean \"10.0.0.0/8\"")
    );
    assert!(
        err("listen = \"localhost\"").starts_with("listen: \"localhost\" is not an address:port")
    );
    assert!(err("[dlp]\nmode = \"loud\"").starts_with("dlp.mode: \"loud\": expected"));
    assert!(err("[dlp]\ndisable_rules = [\"a\"]\nwarn_rules = [\"a\"]")
        .starts_with("dlp.warn_rules[0]:"));
    assert!(err("[dlp]\nknown_secret_env = [\"A-B\"]").starts_with("dlp.known_secret_env[0]:"));
    assert!(err("[upstream.hosts]\n\"10.0.0.1\" = \"10.0.0.2\"")
        .starts_with("upstream.hosts.\"10.0.0.1\": the key must be a host name"));
    assert!(err("[upstream.hosts]\n\"a.internal\" = \"nope\"").contains("is not an IP address"));
    assert!(err("[upstream.hosts]\n\"a.internal\" = \"0.0.0.0\"").contains("can never be dialed"));
    assert!(
        err("[upstream]\nnameservers = [\"dns.google\"]").starts_with("upstream.nameservers[0]:")
    );
}

#[test]
fn type_errors_name_the_key() {
    let e = parse("\nlisten = 3128\n").unwrap_err();
    assert_eq!(e.key(), Some("listen"), "{e}");
    assert_eq!(e.line(), Some(2));
    let e = parse("[egress]\nallow = \"example.com\"\n").unwrap_err();
    assert_eq!(e.key(), Some("egress.allow"), "{e}");
    let e = parse("[ca]\ncert = \"a\"\n").unwrap_err();
    assert!(e.to_string().contains("missing field `key`"), "{e}");
    let e = parse("[[inject]]\nhost = \"a.com\"\nheader = \"x\"\nplaceholder = \"pppppppp\"\ntoken_env = \"T\"\nrequire = \"yes\"\n").unwrap_err();
    assert_eq!(e.key(), Some("inject[0].require"), "{e}");
}

#[test]
fn syntax_errors_have_lines() {
    let e = parse("listen = \"a\"\n[egress\n").unwrap_err();
    assert!(
        matches!(e, ConfigError::Syntax { line: Some(2), .. }),
        "{e:?}"
    );
}

#[test]
fn route_and_inject_validation() {
    let route = |extra: &str| {
        format!("routes_listen = \"127.0.0.1:9099\"\n[[routes]]\npath = \"/a/\"\ntoken_env = \"T\"\n{extra}\n")
    };
    assert!(parse(&route("upstream = \"https://a.example\"")).is_ok());
    assert!(err(&route("upstream = \"http://a.example\"")).starts_with("routes[0].upstream:"));
    assert!(err(&route("upstream = \"https://u:p@a.example\"")).contains("credentials in the URL"));
    assert!(err(&route(
        "upstream = \"https://a.example\"\nauth_scheme = \"Bear er\""
    ))
    .starts_with("routes[0].auth_scheme:"));
    assert!(
        err("[[routes]]\npath = \"/a/\"\nupstream = \"https://a.example\"\ntoken_env = \"T\"")
            .starts_with("routes_listen:")
    );
    let dup = "routes_listen = \"127.0.0.1:9099\"\n[[routes]]\npath = \"/a\"\nupstream = \"https://a.example\"\ntoken_env = \"T\"\n[[routes]]\npath = \"/a/\"\nupstream = \"https://b.example\"\ntoken_env = \"T\"\n";
    assert!(err(dup).starts_with("routes[1].path: \"/a/\" is already used by routes[0]"));

    let inject = |host: &str, header: &str, placeholder: &str| {
        format!("[egress]\npassthrough = [\"pinned.example\"]\n[[inject]]\nhost = \"{host}\"\nheader = \"{header}\"\nplaceholder = \"{placeholder}\"\ntoken_env = \"T\"\n")
    };
    let ok = parse(&inject("api.example:8443", "x-api-key", "placeholder-1")).unwrap();
    assert_eq!(ok.inject[0].port, 8443);
    assert!(err(&inject("*.example.com", "x-api-key", "placeholder-1")).contains("one exact host"));
    assert!(err(&inject("api.example:*", "x-api-key", "placeholder-1")).contains("name one port"));
    assert!(
        err(&inject("pinned.example", "x-api-key", "placeholder-1")).contains("egress.passthrough")
    );
    assert!(err(&inject("api.example", "Host", "placeholder-1")).starts_with("inject[0].header:"));
    assert!(
        err(&inject("api.example", "bad header", "placeholder-1")).starts_with("inject[0].header:")
    );
    assert!(err(&inject("api.example", "x-api-key", "short")).starts_with("inject[0].placeholder:"));
}

#[test]
fn embedded_default_is_a_small_useful_policy() {
    let c = Config::embedded_default().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:3128");
    assert!(c.ca.is_none(), "embedded default uses an ephemeral CA");
    assert_eq!(c.dlp.mode, DlpMode::Block);
    let allow: Vec<String> = c.egress.allow.iter().map(ToString::to_string).collect();
    for want in [
        "api.anthropic.com",
        "github.com",
        "*.githubusercontent.com",
        "registry.npmjs.org",
        "pypi.org",
        "files.pythonhosted.org",
        "crates.io",
        "static.crates.io",
        "index.crates.io",
    ] {
        assert!(
            allow.iter().any(|a| a == want),
            "{want} missing from {allow:?}"
        );
    }
}

#[test]
fn secrets_are_read_by_name_and_never_echoed() {
    let c = parse(FULL).unwrap();
    let env = |k: &str| match k {
        "CLAUDE_BOTTLE_OAUTH_TOKEN" => Some("sk-ant-oat01-SECRETVALUE".to_owned()),
        "OPENAI_API_KEY" => Some("sk-proj-OPENAISECRET".to_owned()),
        "EXTRA_SECRET" => Some("extra secret with spaces".to_owned()),
        _ => None,
    };
    let s = c.resolve_secrets(env).unwrap();
    assert_eq!(s.len(), 3, "two routes share one token_env");
    assert_eq!(
        s.get("CLAUDE_BOTTLE_OAUTH_TOKEN").unwrap().expose_secret(),
        "sk-ant-oat01-SECRETVALUE"
    );
    assert_eq!(
        s.for_token(c.inject[0].token()).unwrap().expose_secret(),
        "sk-proj-OPENAISECRET"
    );
    let debug = format!("{s:?}");
    assert!(debug.contains("OPENAI_API_KEY"), "{debug}");
    assert!(
        !debug.contains("SECRETVALUE")
            && !debug.contains("OPENAISECRET")
            && !debug.contains("spaces"),
        "{debug}"
    );

    let missing = c
        .resolve_secrets(|k| if k == "OPENAI_API_KEY" { None } else { env(k) })
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "environment variable OPENAI_API_KEY (named by inject[0].token_env) is not set"
    );

    let newline = c
        .resolve_secrets(|k| {
            if k == "CLAUDE_BOTTLE_OAUTH_TOKEN" {
                Some("sk-ant-TOKENVALUE\n".into())
            } else {
                env(k)
            }
        })
        .unwrap_err()
        .to_string();
    assert!(
        newline.contains("CLAUDE_BOTTLE_OAUTH_TOKEN") && newline.contains("whitespace"),
        "{newline}"
    );
    assert!(!newline.contains("TOKENVALUE"), "{newline}");
    assert!(!format!("{newline:?}").contains("TOKENVALUE"));

    let empty = c
        .resolve_secrets(|k| {
            if k == "EXTRA_SECRET" {
                Some(String::new())
            } else {
                env(k)
            }
        })
        .unwrap_err();
    assert!(empty.to_string().contains("EXTRA_SECRET") && empty.to_string().contains("empty"));
}

#[test]
fn config_debug_holds_no_secret_values() {
    let c = parse(FULL).unwrap();
    let debug = format!("{c:?}");
    assert!(
        debug.contains("CLAUDE_BOTTLE_OAUTH_TOKEN"),
        "names are fine"
    );
}
