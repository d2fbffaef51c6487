//! The real `git` client, isolated from the user's and system's git config.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::Result;

use super::{run_with_timeout, scrub_env};

/// Every git invocation is killed after this long.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `git ARGS` with extra `env`, no system config, no prompts, no
/// inherited proxy variables, and a temp-free `HOME` left as is. Use
/// `-c http.proxy=URL` in `args` and `("GIT_SSL_CAINFO", ca)` in `env`.
pub fn git(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut cmd = Command::new("git");
    scrub_env(&mut cmd);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, None, GIT_TIMEOUT)
}

/// `git clone URL DEST` through `proxy` (if any), trusting `ca` via
/// `GIT_SSL_CAINFO`. Extra `git -c` settings may be given as `key=value`.
pub fn git_clone(
    url: &str,
    dest: &Path,
    proxy: Option<&str>,
    ca: Option<&Path>,
    config: &[&str],
) -> Result<Output> {
    let dest = dest.to_string_lossy().into_owned();
    let proxy_setting = proxy.map(|p| format!("http.proxy={p}"));
    let mut args: Vec<&str> = Vec::new();
    if let Some(p) = &proxy_setting {
        args.extend(["-c", p.as_str()]);
    }
    for c in config {
        args.extend(["-c", c]);
    }
    args.extend(["clone", "--quiet", url, dest.as_str()]);
    let ca = ca.map(|p| p.to_string_lossy().into_owned());
    let env: Vec<(&str, &str)> = ca
        .as_deref()
        .map(|c| ("GIT_SSL_CAINFO", c))
        .into_iter()
        .collect();
    git(&args, &env)
}
