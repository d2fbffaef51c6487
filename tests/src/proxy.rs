//! The real `egress-proxy` binary as a child process: config written to a
//! temp dir, output captured to files, readiness taken from its own `ready`
//! log event (never from sleeping), and a hard kill on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

/// How long the proxy may take to log `ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `stop()` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The proxy writes audit lines in batches at most 50 ms old (`proxy/src/audit/sink.rs`,
/// `FLUSH_AFTER`); reading after this long sees every line of what came before.
pub const AUDIT_SETTLE: Duration = Duration::from_millis(250);

/// A CA made by the proxy's own `ca init` (the per-bottle CA clients trust).
#[derive(Debug)]
pub struct ProxyCa {
    dir: TempDir,
}

impl ProxyCa {
    /// Runs `BIN ca init --dir DIR` into a fresh temp dir.
    pub fn init(bin: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-proxyca-")
            .tempdir()?;
        let mut cmd = Command::new(bin);
        cmd.arg("ca").arg("init").arg("--dir").arg(dir.path());
        let out = crate::clients::run_with_timeout(cmd, None, Duration::from_secs(30))?;
        if !out.status.success() {
            bail!(
                "{} ca init failed: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ca = Self { dir };
        if !ca.cert_path().is_file() || !ca.key_path().is_file() {
            bail!("ca init did not write ca.pem and ca.key");
        }
        Ok(ca)
    }

    /// Directory holding `ca.pem` and `ca.key`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DIR/ca.pem`: what clients trust (`--cacert`, `GIT_SSL_CAINFO`, ...).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `DIR/ca.key`.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("ca.key")
    }

    /// A `[ca]` TOML section pointing at these files (absolute paths).
    pub fn config_section(&self) -> String {
        format!(
            "[ca]\ncert = {}\nkey = {}\n",
            toml_str(&self.cert_path().to_string_lossy()),
            toml_str(&self.key_path().to_string_lossy())
        )
    }
}

/// Quotes `s` as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A running `egress-proxy run --config FILE`.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    dir: TempDir,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    routes: Option<SocketAddr>,
    ready: serde_json::Value,
}

impl ProxyProcess {
    /// Writes `config_toml` to `DIR/config.toml` (relative paths in it resolve
    /// against DIR only if the proxy does so; prefer absolute paths), spawns
    /// the proxy with exactly `env` added (proxy env vars scrubbed), and waits
    /// for the `ready` event on stderr.
    pub fn start(bin: &Path, config_toml: &str, env: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-proxy-")
            .tempdir()?;
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml)?;
        let stdout = File::create(dir.path().join("stdout.log"))?;
        let stderr = File::create(dir.path().join("stderr.log"))?;
        let mut cmd = Command::new(bin);
        crate::clients::scrub_env(&mut cmd);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut proc = Self {
            child,
            dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            routes: None,
            ready: serde_json::Value::Null,
        };
        proc.wait_ready()?;
        Ok(proc)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(ready) = self.stderr_json().into_iter().find_map(ready_fields) {
                let addr = |key: &str| -> Result<Option<SocketAddr>> {
                    // An absent listener may be logged as "" rather than omitted.
                    match ready
                        .get(key)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                    {
                        Some(s) => Ok(Some(
                            s.parse().with_context(|| format!("ready.{key} = {s:?}"))?,
                        )),
                        None => Ok(None),
                    }
                };
                self.listen = addr("listen")?.context("ready event without `listen`")?;
                self.admin = addr("admin_listen")?;
                self.routes = addr("routes_listen")?;
                self.ready = ready;
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "egress-proxy exited ({status}) before ready:\n{}",
                    self.all_output()
                );
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "egress-proxy not ready after {READY_TIMEOUT:?}:\n{}",
                    self.all_output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_json(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stderr())
    }

    /// `http://127.0.0.1:PORT` for `--proxy` / `HTTPS_PROXY`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The forward-proxy listener address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// `admin_listen` from the ready event.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// `routes_listen` from the ready event.
    pub fn routes_addr(&self) -> Option<SocketAddr> {
        self.routes
    }

    /// `http://ADDR` of the routes listener.
    pub fn routes_url(&self) -> Option<String> {
        self.routes.map(|a| format!("http://{a}"))
    }

    /// The whole ready event.
    pub fn ready_event(&self) -> &serde_json::Value {
        &self.ready
    }

    /// The temp dir holding config.toml, stdout.log, stderr.log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Audit events of everything done so far: stdout lines that parse as JSON, read once the
    /// proxy's audit batching has had time to write them out.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::thread::sleep(AUDIT_SETTLE);
        self.audit_written()
    }

    /// Audit events written so far (no wait).
    pub fn audit_written(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stdout())
    }

    /// Polls [`Self::audit_written`] until one satisfies `pred` (audit is written in batches,
    /// after the client saw its response).
    pub fn wait_audit(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.audit_written().into_iter().find(|v| pred(v)) {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tracing log events so far (stderr JSON lines).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.stderr_json()
    }

    /// Raw stdout.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// Raw stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// stdout + stderr, for "the token never appears" greps.
    pub fn all_output(&self) -> String {
        // After the audit batching window, so a "never appears" grep also covers the audit lines
        // of everything done so far.
        std::thread::sleep(AUDIT_SETTLE);
        format!("{}{}", self.stdout(), self.stderr())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// Current resident set (VmRSS) in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// `/proc/PID/cmdline` as bytes (NUL-separated argv).
    pub fn cmdline(&self) -> Result<Vec<u8>> {
        Ok(std::fs::read(format!("/proc/{}/cmdline", self.pid()))?)
    }

    /// Sends SIGTERM (the `kill` utility: no unsafe code here).
    pub fn signal_term(&self) -> Result<()> {
        self.signal("TERM")
    }

    /// Sends the named signal (`TERM`, `INT`, ...).
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {} failed", self.pid());
        }
        Ok(())
    }

    /// SIGTERM, wait ≤ [`STOP_TIMEOUT`], then SIGKILL. Returns the exit status
    /// and whether it exited on its own (graceful).
    pub fn stop(&mut self) -> Result<(ExitStatus, bool)> {
        self.stop_with("TERM")
    }

    /// [`stop`](Self::stop) with another signal (SIGINT: Ctrl-C in a terminal).
    pub fn stop_with(&mut self, signal: &str) -> Result<(ExitStatus, bool)> {
        if let Some(status) = self.child.try_wait()? {
            return Ok((status, true));
        }
        self.signal(signal)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, true));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        Ok((self.child.wait()?, false))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The fields of a `ready` event: top-level with `flatten_event(true)`,
/// or under `fields` with tracing-subscriber's default JSON layout.
fn ready_fields(v: serde_json::Value) -> Option<serde_json::Value> {
    if v["message"] == "ready" {
        return Some(v);
    }
    if v["fields"]["message"] == "ready" {
        return Some(v["fields"].clone());
    }
    None
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn proc_status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("{key} not in /proc/{pid}/status"))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("parsing /proc status value")
}

/// The `egress-proxy` binary for tests outside the proxy crate:
/// `EGRESS_PROXY_BIN` if set, else `target/<profile>/egress-proxy` derived
/// from the running test executable (`target/<profile>/deps/NAME-HASH`).
pub fn egress_proxy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EGRESS_PROXY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir.join("egress-proxy")
}
