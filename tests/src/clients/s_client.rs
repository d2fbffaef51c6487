//! `openssl s_client` for TLS edge cases curl will not produce, notably an SNI
//! that differs from the CONNECT host (OpenSSL 3's `-proxy` does the CONNECT).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use super::{run_with_timeout, scrub_env};

/// Builder for `openssl s_client`.
#[derive(Debug, Clone)]
pub struct SClient {
    connect: String,
    proxy: Option<String>,
    servername: Option<String>,
    no_sni: bool,
    cafile: Option<PathBuf>,
    alpn: Option<String>,
    input: Vec<u8>,
    ign_eof: bool,
    timeout: Duration,
}

/// What s_client printed.
#[derive(Debug, Clone)]
pub struct SClientOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

impl SClientOutput {
    /// True when a TLS session was established and the chain verified.
    pub fn verified(&self) -> bool {
        let all = format!("{}{}", self.stdout, self.stderr);
        all.contains("Verify return code: 0 (ok)") || all.contains("Verification: OK")
    }

    /// True if any handshake completed (a cipher was negotiated).
    pub fn handshake_done(&self) -> bool {
        let all = format!("{}{}", self.stdout, self.stderr);
        (all.contains("Cipher is") || all.contains("Ciphersuite:"))
            && !all.contains("Cipher is (NONE)")
    }
}

impl SClient {
    /// `-connect target` (`host:port`; through a proxy, the CONNECT target).
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            connect: target.into(),
            proxy: None,
            servername: None,
            no_sni: false,
            cafile: None,
            alpn: None,
            input: Vec::new(),
            ign_eof: false,
            timeout: Duration::from_secs(20),
        }
    }

    /// `-proxy host:port` (no scheme).
    pub fn proxy(mut self, addr: impl Into<String>) -> Self {
        self.proxy = Some(addr.into());
        self
    }

    /// `-noservername`: send no SNI at all.
    pub fn no_sni(mut self) -> Self {
        self.no_sni = true;
        self
    }

    /// `-servername` (the SNI sent; default: the `-connect` host, as OpenSSL does).
    pub fn servername(mut self, sni: impl Into<String>) -> Self {
        self.servername = Some(sni.into());
        self
    }

    /// `-CAfile` plus `-verify_return_error`.
    pub fn cafile(mut self, path: impl AsRef<Path>) -> Self {
        self.cafile = Some(path.as_ref().to_path_buf());
        self
    }

    /// `-alpn h2,http/1.1`.
    pub fn alpn(mut self, list: impl Into<String>) -> Self {
        self.alpn = Some(list.into());
        self
    }

    /// Bytes written after the handshake (e.g. a raw HTTP request).
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.input = bytes.into();
        self
    }

    /// `-ign_eof`: keep reading after stdin ends until the server closes.
    pub fn ign_eof(mut self) -> Self {
        self.ign_eof = true;
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    pub fn run(&self) -> Result<SClientOutput> {
        let out = run_with_timeout(self.command(), Some(self.input.clone()), self.timeout)?;
        Ok(SClientOutput {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit_code: out.status.code().unwrap_or(-1),
        })
    }

    /// Starts s_client and leaves it running: `input` is written once the process is up and
    /// stdin stays open, so the connection stays open until the server closes it or the child
    /// is killed (for tests of connections that outlive a request). Output is discarded.
    pub fn spawn(&self) -> Result<Child> {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn()?;
        if let Some(stdin) = child.stdin.as_mut() {
            stdin.write_all(&self.input)?;
            stdin.flush()?;
        }
        Ok(child)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("openssl");
        scrub_env(&mut cmd);
        cmd.arg("s_client").arg("-connect").arg(&self.connect);
        if let Some(p) = &self.proxy {
            cmd.arg("-proxy").arg(p);
        }
        if let Some(s) = &self.servername {
            cmd.arg("-servername").arg(s);
        } else if self.no_sni {
            cmd.arg("-noservername");
        }
        if let Some(ca) = &self.cafile {
            cmd.arg("-CAfile").arg(ca).arg("-verify_return_error");
        }
        if let Some(a) = &self.alpn {
            cmd.arg("-alpn").arg(a);
        }
        if self.ign_eof {
            cmd.arg("-ign_eof");
        }
        cmd
    }
}
