//! `token_file` for routes and injections: read once by `resolve_secrets`, one trailing newline
//! trimmed, private files only, exactly one of `token_env`/`token_file`, and no error ever
//! carries the file's contents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_proxy::config::{Config, ConfigError, TokenRef};
use secrecy::ExposeSecret;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const VALUE: &str = "btl-file-token-Q7zK2mW9xR4vT8";

fn config(dir: &Path, route_token: &str, inject_token: &str) -> Result<Config, ConfigError> {
    let src = format!(
        "routes_listen = \"127.0.0.1:9099\"\n\
         [[routes]]\npath = \"/a/\"\nupstream = \"https://a.example\"\n{route_token}\n\
         [[routes]]\npath = \"/b/\"\nupstream = \"https://b.example\"\n{route_token}\n\
         [[inject]]\nhost = \"api.example\"\nheader = \"x-api-key\"\nplaceholder = \"placeholder-1\"\n{inject_token}\n"
    );
    Config::from_toml_str(&src, dir)
}

fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// `resolve_secrets` with no environment: only files can satisfy the config.
fn resolve_err(c: &Config) -> String {
    let e = c.resolve_secrets(|_| None).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(VALUE), "the error holds the token: {text}");
    text
}

#[test]
fn a_private_file_is_read_once_trimmed_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    let route = write(dir.path(), "route", &format!("{VALUE}\n"), 0o400);
    write(dir.path(), "inject", "inject-token-Vb3Xs8\r\n", 0o600);
    let c = config(
        dir.path(),
        &format!("token_file = {:?}", route.to_str().unwrap()),
        "token_file = \"inject\"",
    )
    .unwrap();
    // Relative paths resolve against the config's directory.
    let inject_path = dir.path().join("inject");
    assert_eq!(c.inject[0].token(), TokenRef::File(&inject_path));
    assert_eq!(c.routes[0].token(), TokenRef::File(&route));
    let s = c.resolve_secrets(|_| None).unwrap();
    assert_eq!(s.len(), 2, "two routes naming one file share one secret");
    assert_eq!(s.get_file(&route).unwrap().expose_secret(), VALUE);
    assert_eq!(
        s.for_token(c.inject[0].token()).unwrap().expose_secret(),
        "inject-token-Vb3Xs8"
    );
    assert_eq!(s.env_names().count(), 0, "no variable to scrub");
    let ids: Vec<&str> = s.iter().map(|(id, _)| id).collect();
    assert!(ids.contains(&route.to_str().unwrap()), "{ids:?}");
    let debug = format!("{s:?} {c:?}");
    assert!(!debug.contains(VALUE), "{debug}");
    assert!(debug.contains("route"), "paths are fine: {debug}");
}

#[test]
fn env_and_file_sources_mix() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "route", VALUE, 0o600);
    let c = config(dir.path(), "token_file = \"route\"", "token_env = \"INJ\"").unwrap();
    let s = c
        .resolve_secrets(|k| (k == "INJ").then(|| "env-token-123".to_owned()))
        .unwrap();
    assert_eq!(s.get("INJ").unwrap().expose_secret(), "env-token-123");
    assert_eq!(
        s.for_token(c.routes[1].token()).unwrap().expose_secret(),
        VALUE
    );
    assert_eq!(s.env_names().collect::<Vec<_>>(), ["INJ"]);
}

#[test]
fn a_missing_file_names_path_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "inject", VALUE, 0o600);
    let c = config(
        dir.path(),
        "token_file = \"nope\"",
        "token_file = \"inject\"",
    )
    .unwrap();
    let e = resolve_err(&c);
    let path = dir.path().join("nope");
    assert!(
        e.contains(&format!("token file {}", path.display())) && e.contains("routes[0].token_file"),
        "{e}"
    );
}

#[test]
fn empty_files_are_refused() {
    for contents in ["", "\n", "\r\n"] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "t", contents, 0o600);
        let c = config(dir.path(), "token_file = \"t\"", "token_file = \"t\"").unwrap();
        let e = resolve_err(&c);
        assert!(e.contains("is empty"), "{contents:?}: {e}");
    }
}

#[test]
fn group_or_world_readable_files_are_refused_naming_the_mode() {
    for mode in [0o644, 0o640, 0o604, 0o610] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "t", VALUE, mode);
        let c = config(dir.path(), "token_file = \"t\"", "token_file = \"t\"").unwrap();
        let e = resolve_err(&c);
        assert!(
            e.contains(&path.display().to_string()) && e.contains(&format!("mode {mode:04o}")),
            "{mode:o}: {e}"
        );
        assert!(e.contains("chmod 600"), "{e}");
    }
}

#[test]
fn bad_contents_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    // Two newlines: only one is trimmed, the other would be header injection.
    write(dir.path(), "two", &format!("{VALUE}\n\n"), 0o600);
    write(dir.path(), "space", &format!("Bearer {VALUE}"), 0o600);
    std::fs::write(dir.path().join("bin"), b"\xff\xfe-token-bytes").unwrap();
    std::fs::set_permissions(
        dir.path().join("bin"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for name in ["two", "space"] {
        let c = config(
            dir.path(),
            &format!("token_file = \"{name}\""),
            "token_env = \"UNUSED\"",
        )
        .unwrap();
        assert!(resolve_err(&c).contains("whitespace"), "{name}");
    }
    let c = config(dir.path(), "token_file = \"bin\"", "token_file = \"bin\"").unwrap();
    assert!(resolve_err(&c).contains("UTF-8"));
    let big = "x".repeat(70 * 1024);
    write(dir.path(), "big", &big, 0o600);
    let c = config(dir.path(), "token_file = \"big\"", "token_file = \"big\"").unwrap();
    let e = c.resolve_secrets(|_| None).unwrap_err().to_string();
    assert!(e.contains("larger than") && !e.contains("xxxxxxxx"), "{e}");
    let c = config(dir.path(), "token_file = \".\"", "token_file = \".\"").unwrap();
    assert!(resolve_err(&c).contains("not a regular file"));
}

#[test]
fn exactly_one_source_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let e = config(
        dir.path(),
        "token_env = \"T\"\ntoken_file = \"t\"",
        "token_env = \"I\"",
    )
    .unwrap_err();
    assert_eq!(e.key(), Some("routes[0].token_file"), "{e}");
    assert_eq!(e.line(), Some(6), "{e}");
    assert!(e.to_string().contains("not both"), "{e}");
    let e = config(dir.path(), "token_env = \"T\"", "").unwrap_err();
    assert_eq!(e.key(), Some("inject[0].token_env"), "{e}");
    assert_eq!(e.line(), Some(10), "the [[inject]] header: {e}");
    assert!(e.to_string().contains("token_file"), "{e}");
    let e = config(dir.path(), "token_file = \"\"", "token_env = \"I\"").unwrap_err();
    assert_eq!(e.key(), Some("routes[0].token_file"), "{e}");
    let e = config(dir.path(), "token_file = \"a=b\"", "token_env = \"I\"").unwrap_err();
    assert!(e.to_string().contains("'='"), "{e}");
    let e = config(dir.path(), "token_fil = \"t\"", "token_env = \"I\"").unwrap_err();
    assert!(
        matches!(&e, ConfigError::UnknownKey { suggestion: Some(s), line: Some(5), .. } if s == "token_file"),
        "{e:?}"
    );
}
