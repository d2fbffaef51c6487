//! Real client programs (curl, git, python requests, openssl s_client, raw
//! TCP) run with hard timeouts. Proxy-related environment variables are
//! removed so the host environment can never silently route a test.

mod curl;
mod git;
mod python;
mod raw;
mod s_client;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use curl::{Curl, CurlOutput, HttpVersion, TimedLines};
pub use git::{git, git_clone, GIT_TIMEOUT};
pub use python::{python_requests, PyRequest, PyResponse};
pub use raw::{http_raw, raw_connect, RawResponse};
pub use s_client::{SClient, SClientOutput};

/// Environment variables that would route a client through some other proxy.
pub const PROXY_ENV_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// Removes [`PROXY_ENV_VARS`] from `cmd`.
pub fn scrub_env(cmd: &mut Command) {
    for var in PROXY_ENV_VARS {
        cmd.env_remove(var);
    }
}

/// What to feed a child's stdin.
#[derive(Debug, Clone)]
pub enum StdinData {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` copies of `byte`, generated in 64 KiB pieces (GiB-sized uploads
    /// without GiB-sized buffers or temp files).
    Repeat { byte: u8, len: u64 },
}

impl StdinData {
    pub(crate) fn write_to(self, pipe: &mut impl Write) -> std::io::Result<()> {
        match self {
            Self::Bytes(b) => pipe.write_all(&b),
            Self::Repeat { byte, len } => {
                let chunk = vec![byte; 64 * 1024];
                let mut left = len;
                while left > 0 {
                    let n = usize::try_from(left)
                        .unwrap_or(chunk.len())
                        .min(chunk.len());
                    pipe.write_all(&chunk[..n])?;
                    left -= n as u64;
                }
                Ok(())
            }
        }
    }
}

/// Runs `cmd` to completion, feeding `stdin`, killing it after `timeout`
/// (which is an error carrying whatever stderr it produced).
pub fn run_with_timeout(cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Result<Output> {
    run_with_stdin(cmd, stdin.map(StdinData::Bytes), timeout)
}

/// [`run_with_timeout`] with any [`StdinData`].
pub fn run_with_stdin(
    mut cmd: Command,
    stdin: Option<StdinData>,
    timeout: Duration,
) -> Result<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd.spawn().with_context(|| format!("spawning {program}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Detached: a client that exits early closes the pipe; not our error.
        std::thread::spawn(move || {
            let _ = data.write_to(&mut pipe);
        });
    }
    let mut out_pipe = child.stdout.take().context("stdout pipe")?;
    let mut err_pipe = child.stderr.take().context("stderr pipe")?;
    // Readers report through channels so a grandchild that keeps a pipe open
    // cannot hang the test past its deadline.
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        let _ = out_tx.send(buf);
    });
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        let _ = err_tx.send(buf);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_rx
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            bail!(
                "{program} timed out after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}
