//! The credential broker end to end (issue 4): credential routes on the routes listener, in-tunnel
//! injection, the proxy's own tokens as known secrets, and secrets hygiene — real curl and git
//! against the real binary and a recording TLS upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Bench, Setup, HOST};
use testkit::{git, git_clone, Curl};

/// Route token (shared by `/anthropic/` and `/alt/`). `/` and `=` make every encoding differ.
/// (No `+` here; `known_secret_with_plus_in_a_form_context_is_refused` covers that case.)
const TOKEN: &str = "btl-e2e-9xQ2_vK7/wR4=mZ8pL3nT6yH1qJ5";
/// Token of the `/anthropic/beta/` route.
const TOKEN_B: &str = "btl-e2e-beta-Hs4Kw9Lp2Xq7Vn5Rt8Yz3";
/// Token of the `[[inject]]` rule.
const INJECT_TOKEN: &str = "btl-e2e-inject-Uc6Gm1Qb8Jf3Wd9Ze";
const PLACEHOLDER: &str = "bottle-placeholder-test";

const ROUTES: &str = r#"
[[routes]]
path = "/anthropic/"
upstream = "https://upstream.test:@PORT@"
token_env = "BOTTLE_E2E_TOKEN"

[[routes]]
path = "/anthropic/beta/"
upstream = "https://upstream.test:@PORT@/base"
auth_scheme = "token"
token_env = "BOTTLE_E2E_TOKEN_B"

[[routes]]
path = "/alt/"
upstream = "https://alt.upstream.test:@PORT@"
token_env = "BOTTLE_E2E_TOKEN"

[[routes]]
path = "/gitr/"
upstream = "https://upstream.test:@PORT@"
token_env = "BOTTLE_E2E_TOKEN"
"#;

fn inject_section(require: bool) -> String {
    format!(
        "[[inject]]\nhost = \"upstream.test:@PORT@\"\nheader = \"Authorization\"\n\
         placeholder = \"{PLACEHOLDER}\"\ntoken_env = \"BOTTLE_E2E_INJECT\"\nrequire = {require}\n"
    )
}

/// The proxy with every route, the injection rule and all three tokens in its environment.
fn broker(git: bool, require: bool) -> Bench {
    broker_with(git, require, "")
}

/// `broker` with more config appended (e.g. a `[dlp]` table).
fn broker_with(git: bool, require: bool, more: &str) -> Bench {
    Bench::with(Setup {
        git,
        top: "routes_listen = \"127.0.0.1:0\"\n".into(),
        extra: format!("{ROUTES}\n{}\n{more}", inject_section(require)),
        env: vec![
            ("BOTTLE_E2E_TOKEN".into(), TOKEN.into()),
            ("BOTTLE_E2E_TOKEN_B".into(), TOKEN_B.into()),
            ("BOTTLE_E2E_INJECT".into(), INJECT_TOKEN.into()),
        ],
        ..Setup::default()
    })
}

fn route(b: &Bench, path: &str) -> Curl {
    Curl::new(format!("{}{path}", b.proxy.routes_url().unwrap()))
}

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// Every form of every token the proxy holds.
fn token_forms() -> Vec<String> {
    let mut forms = Vec::new();
    for t in [TOKEN, TOKEN_B, INJECT_TOKEN] {
        forms.push(t.to_owned());
        forms.push(base64::engine::general_purpose::STANDARD.encode(t));
        forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t));
        forms.push(hex(t));
    }
    forms
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn percent(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Nothing the proxy printed (logs and audit) or exposes in its argv names a token.
fn assert_hygiene(b: &Bench) {
    let out = b.proxy.all_output();
    let argv = String::from_utf8_lossy(&b.proxy.cmdline().unwrap()).into_owned();
    for form in token_forms() {
        assert!(!out.contains(&form), "proxy output holds a token form");
        assert!(!argv.contains(&form), "proxy argv holds a token form");
    }
}

#[test]
fn route_strips_prefix_replaces_agent_credentials_and_sends_the_token_once() {
    let b = broker(false, false);
    let out = route(&b, "/anthropic/v1/messages?x=1")
        .method("POST")
        .header("Authorization", "Bearer agent-placeholder")
        .header("Proxy-Authorization", "Basic YWdlbnQ6cHc=")
        .header("x-api-key", "agent-api-key-value")
        .header("Cookie", "session=agent-cookie")
        .body(b"{\"model\":\"m\"}".to_vec())
        .run()
        .unwrap();
    assert_eq!(out.status, 404, "the upstream answered: {}", out.stderr);
    let reqs = b.upstream.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path_and_query, "/v1/messages?x=1");
    assert_eq!(r.method, "POST");
    assert_eq!(r.body_text(), "{\"model\":\"m\"}");
    assert_eq!(r.header_all("authorization"), [format!("Bearer {TOKEN}")]);
    for gone in ["proxy-authorization", "x-api-key", "cookie"] {
        assert!(r.header(gone).is_none(), "{gone} reached the upstream");
    }
    let raw = b.upstream.received_bytes();
    assert_eq!(count(&raw, TOKEN), 1, "the token travels exactly once");
    for agent in [
        "agent-placeholder",
        "agent-api-key",
        "agent-cookie",
        "YWdlbnQ6cHc=",
    ] {
        assert_eq!(count(&raw, agent), 0, "{agent} reached the upstream");
    }
    let audit = b
        .proxy
        .wait_audit(Duration::from_secs(5), |e| e["kind"] == "route")
        .unwrap();
    assert_eq!(audit["host"], HOST);
    assert_eq!(audit["decision"], "allow");
    assert_hygiene(&b);
}

#[test]
fn longest_prefix_base_paths_shared_tokens_and_unknown_paths() {
    let b = broker(false, false);
    // The longer prefix wins, maps under the upstream's base path and uses its own scheme/token.
    let out = route(&b, "/anthropic/beta/v1/messages").run().unwrap();
    assert_eq!(out.status, 404, "{}", out.stderr);
    // `/anthropic` without the slash maps to the upstream root.
    assert_eq!(route(&b, "/anthropic").run().unwrap().status, 404);
    // A second route naming the same token_env, to another host. `/echo` answers with the
    // request, token included: the proxy cuts that response (see `reflect`).
    let out = route(&b, "/alt/echo").run().unwrap();
    assert_ne!(out.exit_code, 0, "an echo of the token must be cut");
    assert!(
        !out.text().contains(TOKEN),
        "the echoed token reached the agent"
    );
    let reqs = b.upstream.requests();
    let alt = reqs.iter().find(|r| r.path_and_query == "/echo").unwrap();
    assert_eq!(
        alt.host.as_deref(),
        Some(format!("alt.upstream.test:{}", b.upstream.port()).as_str())
    );
    let got: Vec<(&str, Option<&str>)> = reqs
        .iter()
        .map(|r| (r.path_and_query.as_str(), r.header("authorization")))
        .collect();
    let bearer = format!("Bearer {TOKEN}");
    let token_b = format!("token {TOKEN_B}");
    assert_eq!(
        got,
        [
            ("/base/v1/messages", Some(token_b.as_str())),
            ("/", Some(bearer.as_str())),
            ("/echo", Some(bearer.as_str())),
        ]
    );

    let out = route(&b, "/nowhere/v1").run().unwrap();
    assert_eq!(out.status, 404);
    let body = out.text();
    for listed in [
        "/anthropic/ ->",
        "/anthropic/beta/ ->",
        "/alt/ ->",
        "/gitr/ ->",
    ] {
        assert!(body.contains(listed), "{body}");
    }
    assert!(
        !body.contains(TOKEN) && !body.contains("BOTTLE_E2E"),
        "{body}"
    );
    assert_eq!(b.upstream.requests().len(), 3, "nothing forwarded for 404");
    assert_hygiene(&b);
}

#[test]
fn sse_through_a_route_arrives_event_by_event() {
    let b = broker(false, false);
    let timed = route(&b, "/anthropic/sse?n=4&interval_ms=500")
        .run_timed_lines()
        .unwrap();
    let events: Vec<_> = timed
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("data:"))
        .collect();
    assert_eq!(events.len(), 4, "{timed:?}");
    let (first, last) = (events[0].0, events[3].0);
    assert!(
        last.saturating_sub(first) >= Duration::from_millis(1200),
        "events were buffered: first {first:?}, last {last:?}"
    );
    assert!(events[1].0.saturating_sub(first) >= Duration::from_millis(300));
}

fn git_ok(args: &[&str]) {
    let out = git(args, &[]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn git_clone_through_a_route_passes_and_push_is_refused() {
    let b = broker(true, false);
    let url = format!("{}/gitr/git/repo.git", b.proxy.routes_url().unwrap());
    let dest = tempfile::tempdir().unwrap();
    let work = dest.path().join("repo");
    let out = git_clone(&url, &work, None, None, &[]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.join("README.md").exists());

    let w = work.to_string_lossy().into_owned();
    std::fs::write(work.join("new.txt"), "pushed?\n").unwrap();
    git_ok(&["-C", &w, "add", "new.txt"]);
    git_ok(&[
        "-C",
        &w,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "commit",
        "-qm",
        "x",
    ]);
    let push = git(&["-C", &w, "push", "origin", "HEAD:refs/heads/pushed"], &[]).unwrap();
    assert!(!push.status.success());
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(stderr.contains("403"), "{stderr}");

    // Both push requests, by hand: refused with a hint, never forwarded.
    let info = route(&b, "/gitr/git/repo.git/info/refs?service=git-receive-pack")
        .run()
        .unwrap();
    assert_eq!(info.status, 403);
    assert!(info.text().contains("git gate"), "{}", info.text());
    let post = route(&b, "/gitr/git/repo.git/git-receive-pack")
        .method("POST")
        .header("Content-Type", "application/x-git-receive-pack-request")
        .body(b"0000".to_vec())
        .run()
        .unwrap();
    assert_eq!(post.status, 403);
    // Spellings an upstream decodes to the same push, and a path that climbs out of the route.
    let encoded = route(&b, "/gitr/git/repo.git/git-receive-pac%6B")
        .method("POST")
        .body(b"0000".to_vec())
        .run()
        .unwrap();
    assert_eq!(encoded.status, 403, "{}", encoded.text());
    let query = route(
        &b,
        "/gitr/git/repo.git/info/refs?service=git%2Dreceive-pack",
    )
    .run()
    .unwrap();
    assert_eq!(query.status, 403, "{}", query.text());
    let climb = route(&b, "/gitr/git/../../other/repo.git/info/refs")
        .arg("--path-as-is")
        .run()
        .unwrap();
    assert_eq!(climb.status, 400, "{}", climb.text());
    assert!(climb.text().contains("'..'"), "{}", climb.text());
    // Servlet containers drop `;params`: a push and a `..` there.
    for (path, method) in [
        ("/gitr/git/repo.git/git-receive-pack;x", "POST"),
        ("/gitr/git/repo.git/git-receive-pack%3Bx", "POST"),
        ("/gitr/git/..;/other/repo.git/info/refs", "GET"),
    ] {
        let out = route(&b, path)
            .method(method)
            .arg("--path-as-is")
            .body(b"0000".to_vec())
            .run()
            .unwrap();
        assert_eq!(out.status, 400, "{path}: {}", out.text());
        assert!(out.text().contains("';'"), "{}", out.text());
    }
    let reqs = b.upstream.requests();
    assert!(reqs.iter().any(|r| r.path.ends_with("/git-upload-pack")));
    assert!(
        !reqs
            .iter()
            .any(|r| r.path_and_query.contains("receive-pack")),
        "a push request reached the upstream"
    );
    let bare = b
        .upstream
        .git_repo()
        .unwrap()
        .path
        .to_string_lossy()
        .into_owned();
    let refs = git(&["--git-dir", &bare, "branch"], &[]).unwrap();
    assert!(!String::from_utf8_lossy(&refs.stdout).contains("pushed"));
    assert_hygiene(&b);
}

#[test]
fn injection_swaps_the_placeholder_only_for_its_host() {
    let b = broker(false, false);
    let placeholder = format!("Bearer {PLACEHOLDER}");
    let out = b
        .curl("/echo")
        .header("Authorization", &placeholder)
        .run()
        .unwrap();
    // The upstream got the token; its echo of it never reaches the agent.
    assert_ne!(out.exit_code, 0, "an echo of the token must be cut");
    assert!(!out.text().contains(INJECT_TOKEN));
    let reqs = b.upstream.requests();
    assert_eq!(
        reqs[0].header_all("authorization"),
        [format!("Bearer {INJECT_TOKEN}")]
    );
    assert_eq!(count(&b.upstream.received_bytes(), INJECT_TOKEN), 1);

    // Another allowed host: the placeholder passes unchanged, and is worthless there.
    let alt = b.upstream.url("alt.upstream.test", "/echo");
    let out = Curl::new(alt)
        .proxy(b.proxy.proxy_url())
        .cacert(b.ca())
        .header("Authorization", &placeholder)
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.json().unwrap()["headers"]["authorization"], placeholder);

    // Without the placeholder: forwarded untouched.
    let out = b
        .curl("/echo")
        .header("Authorization", "Bearer mine")
        .run()
        .unwrap();
    assert_eq!(
        out.json().unwrap()["headers"]["authorization"],
        "Bearer mine"
    );
    let out = b.curl("/echo").run().unwrap();
    assert!(out.json().unwrap()["headers"]
        .get("authorization")
        .is_none());
    assert_eq!(count(&b.upstream.received_bytes(), INJECT_TOKEN), 1);
    assert_hygiene(&b);
}

#[test]
fn injection_with_require_refuses_requests_without_the_placeholder() {
    let b = broker(false, true);
    let out = b
        .curl("/echo")
        .header("Authorization", "Bearer mine")
        .run()
        .unwrap();
    assert_eq!(out.status, 403, "{}", out.text());
    assert!(out.text().contains("placeholder"), "{}", out.text());
    let out = b.curl("/echo").run().unwrap();
    assert_eq!(out.status, 403);
    assert!(b.upstream.requests().is_empty());
    let with = format!("Bearer {PLACEHOLDER}");
    let out = b
        .curl("/v1/models")
        .header("Authorization", &with)
        .run()
        .unwrap();
    assert_eq!(out.status, 404, "the upstream answered: {}", out.stderr);
    assert_eq!(b.upstream.requests().len(), 1);
}

/// Where the agent puts a token it should not hold.
enum At {
    Header(&'static str),
    Query,
    /// A POST body with this Content-Type.
    Body(&'static str),
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// The agent's ways of smuggling a token out.
fn leaks() -> Vec<(&'static str, At, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let basic = format!("Basic {}", b64.encode(format!("u:{TOKEN}")));
    vec![
        ("raw header", At::Header("X-Leak"), TOKEN.into()),
        ("raw query", At::Query, TOKEN.into()),
        ("raw form body", At::Body(FORM), format!("k={TOKEN}")),
        (
            "raw json body",
            At::Body(JSON),
            format!("{{\"k\":\"{TOKEN_B}\"}}"),
        ),
        ("basic auth (base64)", At::Header("Authorization"), basic),
        (
            "base64 body",
            At::Body(JSON),
            b64.encode(format!("xy{TOKEN}")),
        ),
        ("base64url query", At::Query, b64url.encode(TOKEN_B)),
        ("percent query", At::Query, percent(TOKEN)),
        (
            "percent body",
            At::Body(FORM),
            format!("k={}", percent(TOKEN)),
        ),
        ("hex header", At::Header("X-Leak"), hex(INJECT_TOKEN)),
        ("hex body", At::Body("text/plain"), hex(TOKEN)),
    ]
}

#[test]
fn the_token_itself_is_refused_in_every_encoding_and_never_reaches_the_upstream() {
    let b = broker(false, false);
    let alt = |pq: &str| {
        Curl::new(b.upstream.url("alt.upstream.test", pq))
            .proxy(b.proxy.proxy_url())
            .cacert(b.ca())
    };
    for (what, at, payload) in leaks() {
        let pq = match at {
            At::Query => format!("/echo?q={payload}"),
            _ => "/echo".to_owned(),
        };
        for (via, curl) in [
            ("bumped", alt(&pq)),
            ("route", route(&b, &format!("/alt{pq}"))),
        ] {
            let curl = match at {
                At::Header(name) => curl.header(name, &payload),
                At::Query => curl,
                At::Body(ct) => curl.header("Content-Type", ct).body(payload.clone()),
            };
            let out = curl.run().unwrap();
            let text = out.text();
            assert_eq!(out.status, 403, "{what} via {via}: {text}");
            let rule = "DLP rule known-secret:BOTTLE_E2E_";
            assert!(text.contains(rule), "{what} via {via}: {text}");
            for form in token_forms() {
                assert!(
                    !text.contains(&form),
                    "{what} via {via}: the denial echoes it"
                );
            }
        }
    }
    // A route streams the head (with the route's own Authorization) before the body is cleared;
    // the body is held back and the request aborted. So the token may appear only there.
    let raw = b.upstream.received_bytes();
    let injected = count(&raw, &format!("authorization: Bearer {TOKEN}"));
    assert_eq!(
        count(&raw, TOKEN),
        injected,
        "the token reached the upstream"
    );
    for form in token_forms().iter().chain([percent(TOKEN)].iter()) {
        if form != TOKEN {
            assert_eq!(count(&raw, form), 0, "a token form reached the upstream");
        }
    }
    for r in b.upstream.requests() {
        assert!(
            !r.body_complete,
            "a leaking body was delivered: {}",
            r.path_and_query
        );
    }
    let denials = b.audit("deny");
    assert!(denials.len() >= 2 * leaks().len(), "{denials:?}");
    assert_hygiene(&b);
}

/// Regression: a known secret holding `+` (as standard base64 does) in a form-like context
/// (query, `application/x-www-form-urlencoded` body), where `+` decodes to a space. The engine
/// now also matches known secrets on the raw view, so the token and its base64 are refused.
#[test]
fn known_secret_with_plus_in_a_form_context_is_refused() {
    const PLUS: &str = "btl-e2e-9xQ2+vK7/wR4=mZ8pL3nT6yH1qJ5";
    const TILDE: &str = "btl-e2e-tilde~>Qw8Zr5Tn2Lk7Vb4Xs";
    let b = Bench::with(Setup {
        extra: "[dlp]\nknown_secret_env = [\"BOTTLE_E2E_PLUS\", \"BOTTLE_E2E_TILDE\"]\n".into(),
        env: vec![
            ("BOTTLE_E2E_PLUS".into(), PLUS.into()),
            ("BOTTLE_E2E_TILDE".into(), TILDE.into()),
        ],
        ..Setup::default()
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(TILDE);
    assert!(b64.contains('+'));
    let mut missed = Vec::new();
    for (what, curl) in [
        ("raw query", b.curl(&format!("/echo?q={PLUS}"))),
        (
            "raw form body",
            b.curl("/echo").body(PLUS.as_bytes().to_vec()),
        ),
        (
            "base64 form body",
            b.curl("/echo").body(b64.clone().into_bytes()),
        ),
    ] {
        if curl.run().unwrap().status != 403 {
            missed.push(what);
        }
    }
    assert!(missed.is_empty(), "reached the upstream: {missed:?}");
}

/// Secrets hygiene after every kind of traffic in one proxy. `/proc/PID/environ` is the
/// kernel's copy of the initial environment block: `std::env::remove_var` cannot scrub it, so it
/// is reported, not asserted here (env tokens); `route_token_from_a_file_reaches_only_its_upstream`
/// asserts it for file tokens, which the launcher uses.
#[test]
fn tokens_never_appear_in_logs_audit_or_argv() {
    let b = broker(true, false);
    let _ = route(&b, "/anthropic/v1/messages")
        .header("x-api-key", "k")
        .run()
        .unwrap();
    let _ = route(&b, "/nowhere").run().unwrap();
    let _ = route(&b, "/gitr/git/repo.git/info/refs?service=git-receive-pack")
        .run()
        .unwrap();
    let ph = format!("Bearer {PLACEHOLDER}");
    let _ = b.curl("/echo").header("Authorization", &ph).run().unwrap();
    let leak = b
        .curl("/echo")
        .method("POST")
        .body(TOKEN.as_bytes().to_vec())
        .run()
        .unwrap();
    assert_eq!(leak.status, 403);
    let routed = route(&b, "/alt/echo")
        .header("X-Leak", TOKEN_B)
        .run()
        .unwrap();
    assert_eq!(routed.status, 403);
    assert_hygiene(&b);
    assert!(b
        .proxy
        .all_output()
        .contains("known-secret:BOTTLE_E2E_TOKEN"));
    let environ = std::fs::read(format!("/proc/{}/environ", b.proxy.pid())).unwrap_or_default();
    let environ = String::from_utf8_lossy(&environ);
    eprintln!(
        "observation: /proc/PID/environ still holds the token: {}",
        environ.contains(TOKEN)
    );
}

/// Token of the file-sourced route and injection (`token_file`).
const FILE_TOKEN: &str = "btl-e2e-file-Zr8Nc3/Wq6=Hy1Ld4Pk9";

/// A private (0400) token file, as the launcher writes one into the sidecar.
fn token_file(dir: &std::path::Path, contents: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("route-token");
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn route_token_from_a_file_reaches_only_its_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_file(dir.path(), &format!("{FILE_TOKEN}\n"), 0o400);
    let path = testkit::toml_str(&path.to_string_lossy());
    let b = Bench::with(Setup {
        top: "routes_listen = \"127.0.0.1:0\"\n".into(),
        extra: format!(
            "[[routes]]\npath = \"/file/\"\nupstream = \"https://upstream.test:@PORT@\"\n\
             auth_scheme = \"token\"\ntoken_file = {path}\n\
             [[inject]]\nhost = \"alt.upstream.test:@PORT@\"\nheader = \"x-api-key\"\n\
             placeholder = \"{PLACEHOLDER}\"\ntoken_file = {path}\n"
        ),
        // No token in the environment at all: the file is the only source.
        env: Vec::new(),
        ..Setup::default()
    });
    let out = route(&b, "/file/v1/messages")
        .header("Authorization", "Bearer agent-placeholder")
        .run()
        .unwrap();
    assert_eq!(out.status, 404, "the upstream answered: {}", out.stderr);
    let reqs = b.upstream.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path_and_query, "/v1/messages");
    assert_eq!(
        reqs[0].header_all("authorization"),
        [format!("token {FILE_TOKEN}")]
    );
    // Injection from the same file (one secret, shared).
    let alt = Curl::new(b.upstream.url("alt.upstream.test", "/echo"))
        .proxy(b.proxy.proxy_url())
        .cacert(b.ca())
        .header("x-api-key", PLACEHOLDER);
    let out = alt.run().unwrap();
    assert!(
        !out.text().contains(FILE_TOKEN),
        "the echoed token reached the agent"
    );
    let reqs = b.upstream.requests();
    let injected = reqs.iter().find(|r| r.path_and_query == "/echo").unwrap();
    assert_eq!(injected.header("x-api-key"), Some(FILE_TOKEN));
    // The file's token is a known secret like an env-sourced one: refused if the agent sends it.
    let leak = b
        .curl("/echo")
        .method("POST")
        .body(format!("k={FILE_TOKEN}").into_bytes())
        .run()
        .unwrap();
    assert_eq!(leak.status, 403, "{}", leak.text());
    assert!(leak.text().contains("known-secret:"), "{}", leak.text());
    assert!(!leak.text().contains(FILE_TOKEN));
    assert_eq!(count(&b.upstream.received_bytes(), FILE_TOKEN), 2);
    // Nowhere the process exposes: output, argv, and (unlike env tokens) its environment block.
    let out = b.proxy.all_output();
    let argv = b.proxy.cmdline().unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", b.proxy.pid())).unwrap();
    assert!(
        !environ.is_empty(),
        "environ unreadable: the check is vacuous"
    );
    assert!(!out.contains(FILE_TOKEN), "token in proxy output");
    assert_eq!(count(&argv, FILE_TOKEN), 0, "token in argv");
    assert_eq!(count(&environ, FILE_TOKEN), 0, "token in the environment");
}

#[test]
fn a_group_readable_token_file_stops_the_proxy_naming_path_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_file(dir.path(), FILE_TOKEN, 0o644);
    let ca = testkit::ProxyCa::init(&common::bin()).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nroutes_listen = \"127.0.0.1:0\"\n{}\n[[routes]]\npath = \"/a/\"\n\
             upstream = \"https://upstream.test\"\ntoken_file = {}\n",
            ca.config_section(),
            testkit::toml_str(&path.to_string_lossy())
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy started with a 0644 token file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&path.display().to_string()) && text.contains("mode 0644"),
        "{text}"
    );
    assert!(!text.contains(FILE_TOKEN), "{text}");
}

/// `[dlp] exempt_hosts` spares a destination the rules, not the proxy's own tokens: a token
/// the agent should never hold is refused on its way to an exempt host too, while a rule's
/// match (here a GitHub-token-shaped value) passes there.
#[test]
fn an_exempt_host_still_never_receives_a_known_secret() {
    let b = broker_with(
        false,
        false,
        "[dlp]\nexempt_hosts = [\"alt.upstream.test:*\"]\n",
    );
    let alt = || {
        Curl::new(b.upstream.url("alt.upstream.test", "/echo"))
            .proxy(b.proxy.proxy_url())
            .cacert(b.ca())
    };
    let rule_match = "ghp_R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa0QoI";
    let out = alt().header("X-Token", rule_match).run().unwrap();
    assert_eq!(out.status, 200, "{}", out.text());
    assert!(b.upstream.received_bytes_contains(rule_match.as_bytes()));
    let out = alt().header("X-Token", TOKEN).run().unwrap();
    assert_eq!(out.status, 403, "{}", out.text());
    assert!(
        out.text().contains("known-secret:BOTTLE_E2E_TOKEN"),
        "{}",
        out.text()
    );
    assert!(!b.upstream.received_bytes_contains(TOKEN.as_bytes()));
}

/// TRACE asks the upstream to echo the request, the injected credential included.
#[test]
fn trace_is_refused_before_a_token_is_added() {
    let b = broker(false, false);
    let out = route(&b, "/alt/echo").method("TRACE").run().unwrap();
    assert_eq!(out.status, 501, "{}", out.text());
    assert!(!out.text().contains(TOKEN));
    assert!(b.upstream.wait_idle(std::time::Duration::from_secs(5)));
    assert!(b.upstream.requests().is_empty());
}

/// A refusal made before DLP runs (here: a route path with a '..') still never writes a secret
/// from the path into the audit.
#[test]
fn early_refusals_audit_no_secret_from_the_path() {
    let b = broker(false, false);
    let secret = format!("ghp_{}", "R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa0QoI");
    let out = route(&b, &format!("/alt/{secret}/../x"))
        .arg("--path-as-is")
        .run()
        .unwrap();
    assert_eq!(out.status, 400, "{}", out.text());
    let audit = b.proxy.audit_lines();
    let line = audit.iter().find(|e| e["status"] == 400).expect("audited");
    assert_eq!(line["path"], "[redacted: DLP finding in the URL]", "{line}");
    for e in &audit {
        assert!(!e.to_string().contains("ghp_"), "{e}");
    }
}

/// An upstream that answers with the request it got (a debug endpoint, httpbin's /anything)
/// would hand the agent the credential the proxy added. The response is cut as the token
/// shows, over HTTP/1.1 and HTTP/2, and audited as a deny naming the secret by its id.
#[test]
fn a_response_echoing_the_injected_token_is_cut() {
    let b = broker(false, false);
    for (i, client) in ["h1", "h2"].into_iter().enumerate() {
        let curl = b
            .curl("/echo")
            .header("Authorization", &format!("Bearer {PLACEHOLDER}"));
        let curl = if client == "h2" {
            curl.http2()
        } else {
            curl.http1()
        };
        let out = curl.run().unwrap();
        assert_ne!(out.exit_code, 0, "{client}: the response must be cut");
        assert!(!out.text().contains(INJECT_TOKEN), "{client}");
        assert_eq!(count(&b.upstream.received_bytes(), INJECT_TOKEN), i + 1);
        let line = b
            .proxy
            .wait_audit(Duration::from_secs(5), |e| {
                e["decision"] == "deny"
                    && e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("BOTTLE_E2E_INJECT"))
            })
            .unwrap();
        assert!(
            line["reason"].as_str().unwrap().contains("response cut"),
            "{line}"
        );
    }
    // Asked for identity, as every credentialed request is; an upstream that compresses anyway
    // (the token would hide in the gzip bytes) is refused with a 502.
    let reqs = b.upstream.requests();
    assert!(reqs
        .iter()
        .all(|r| r.header("accept-encoding") == Some("identity")));
    let out = b
        .curl("/gzip-echo")
        .header("Authorization", &format!("Bearer {PLACEHOLDER}"))
        .arg("--compressed")
        .run()
        .unwrap();
    assert_eq!(out.status, 502, "{}", out.text());
    assert!(out.text().contains("compressed"), "{}", out.text());
    assert!(!out.text().contains(INJECT_TOKEN));
    // A route's response that does not carry the token streams as before.
    let out = route(&b, "/anthropic/v1/messages").run().unwrap();
    assert_eq!(out.status, 404);
    assert_hygiene(&b);
}

/// A WebSocket API behind a route: upgraded and relayed with the route's token on the
/// handshake, its client messages scanned (a secret closes with 1008 and never arrives).
#[test]
fn a_websocket_through_a_route_is_relayed_and_scanned() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let b = broker(false, false);
    let url = format!("{}/alt/ws", b.proxy.routes_url().unwrap()).replacen("http", "ws", 1);
    let secret = format!("ghp_{}", "R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa0QoI");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut ws, resp) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(Message::Text("hello".into())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        assert_eq!(
            echoed.unwrap().unwrap().unwrap(),
            Message::Text("hello".into())
        );
        ws.send(Message::Text(format!("k={secret}"))).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a 1008 close, got {other:?}"),
            }
        }
    });
    let ws = b.upstream.requests_to("/ws");
    assert_eq!(ws.len(), 1);
    assert_eq!(
        ws[0].header_all("authorization"),
        [format!("Bearer {TOKEN}")]
    );
    assert!(b.upstream.received_bytes_contains(b"hello"));
    assert!(!b.upstream.received_bytes_contains(secret.as_bytes()));
}

/// Requests carrying a credential the proxy added never share an upstream connection with the
/// agent's own requests (a framing flaw upstream could make one swallow the other), while each
/// kind still reuses its own pooled connection.
#[test]
fn credentialed_requests_have_their_own_upstream_connections() {
    let b = broker(false, false);
    // The agent's own requests through a bumped tunnel (no placeholder on this host: alt).
    let alt = b.upstream.url("alt.upstream.test", "/v1/plain");
    for _ in 0..2 {
        // HTTP/1.1 like the route's client, so both would use the same (HTTP/1.1) pool.
        let out = Curl::new(alt.clone())
            .proxy(b.proxy.proxy_url())
            .cacert(b.ca())
            .http1()
            .run()
            .unwrap();
        assert_eq!(out.status, 404);
    }
    // The route to the same upstream host, with its token.
    for _ in 0..2 {
        assert_eq!(route(&b, "/alt/v1/routed").run().unwrap().status, 404);
    }
    let reqs = b.upstream.requests();
    let peers = |path: &str| -> Vec<std::net::SocketAddr> {
        reqs.iter()
            .filter(|r| r.path == path)
            .map(|r| r.peer.expect("peer recorded"))
            .collect()
    };
    let (plain, routed) = (peers("/v1/plain"), peers("/v1/routed"));
    assert_eq!((plain.len(), routed.len()), (2, 2));
    assert_eq!(routed[0], routed[1], "the credentialed pool is reused");
    for p in &plain {
        assert!(
            !routed.contains(p),
            "a credentialed request rode the agent's connection {p}"
        );
    }
}
