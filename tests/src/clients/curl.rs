//! System `curl` driven by a builder: the most common real client in the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{run_with_stdin, scrub_env, StdinData};

/// Which HTTP version curl should try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// curl's default (h1 for http://, h2-capable ALPN for https:// on curl ≥ 7.62).
    #[default]
    Default,
    /// `--http1.1`
    Http11,
    /// `--http2` (ALPN h2 offered over TLS; h1 upgrade attempt over cleartext)
    Http2,
    /// `--http2-prior-knowledge`
    Http2PriorKnowledge,
}

#[derive(Debug, Clone)]
enum Data {
    Bytes(Vec<u8>),
    File(PathBuf),
    UploadFile(PathBuf),
    UploadGenerated { byte: u8, len: u64 },
}

/// Builder for one curl invocation. Body is captured via `-o` into a temp
/// file, response headers via `-D`, and status/version via `-w`.
#[derive(Debug, Clone)]
pub struct Curl {
    url: String,
    proxy: Option<String>,
    cacert: Option<PathBuf>,
    version: HttpVersion,
    method: Option<String>,
    headers: Vec<String>,
    data: Option<Data>,
    output: Option<PathBuf>,
    max_time: Duration,
    connect_timeout: Duration,
    extra: Vec<String>,
}

/// What curl returned.
#[derive(Debug, Clone)]
pub struct CurlOutput {
    /// `%{http_code}` (0 when no final response, e.g. CONNECT refused).
    pub status: u16,
    /// `%{http_connect}`: status of the proxy's CONNECT response (0 if none).
    pub connect_status: u16,
    /// `%{http_version}`: `1.1`, `2`, ...
    pub http_version: String,
    /// Response body (empty when `.output(file)` was used).
    pub body: Vec<u8>,
    /// Headers of the final response (names lowercased).
    pub headers: Vec<(String, String)>,
    /// Raw `-D` dump: every response head, including the proxy's CONNECT reply.
    pub raw_headers: String,
    /// curl's stderr.
    pub stderr: String,
    /// curl's exit code (0 ok; 56 e.g. CONNECT refused; 28 timeout).
    pub exit_code: i32,
}

impl CurlOutput {
    /// Body as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("curl body is not JSON: {}", self.text()))
    }

    /// First value of a final-response header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Lines of a streamed body with their arrival time since curl started.
#[derive(Debug, Clone)]
pub struct TimedLines {
    pub lines: Vec<(Duration, String)>,
    pub exit_code: i32,
    pub stderr: String,
}

impl Curl {
    /// A GET of `url` with a 60 s overall and 10 s connect timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            proxy: None,
            cacert: None,
            version: HttpVersion::Default,
            method: None,
            headers: Vec::new(),
            data: None,
            output: None,
            max_time: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            extra: Vec::new(),
        }
    }

    /// `--proxy URL` (e.g. `ProxyProcess::proxy_url()`); without it `--noproxy '*'`.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// `--cacert FILE`.
    pub fn cacert(mut self, path: impl AsRef<Path>) -> Self {
        self.cacert = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn http_version(mut self, v: HttpVersion) -> Self {
        self.version = v;
        self
    }

    /// `--http1.1`
    pub fn http1(self) -> Self {
        self.http_version(HttpVersion::Http11)
    }

    /// `--http2`
    pub fn http2(self) -> Self {
        self.http_version(HttpVersion::Http2)
    }

    /// `-X METHOD`
    pub fn method(mut self, m: impl Into<String>) -> Self {
        self.method = Some(m.into());
        self
    }

    /// `-H "Name: value"`
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(format!("{name}: {value}"));
        self
    }

    /// `--data-binary @-`, fed through stdin (never on the argv).
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.data = Some(Data::Bytes(bytes.into()));
        self
    }

    /// `--data-binary @FILE`.
    pub fn body_file(mut self, path: impl AsRef<Path>) -> Self {
        self.data = Some(Data::File(path.as_ref().to_path_buf()));
        self
    }

    /// `-T FILE`: streamed upload with a Content-Length (PUT unless
    /// `.method()` says otherwise). Unlike `--data-binary @FILE`, curl does
    /// not load the file into memory.
    pub fn upload_file(mut self, path: impl AsRef<Path>) -> Self {
        self.data = Some(Data::UploadFile(path.as_ref().to_path_buf()));
        self
    }

    /// `-T -` fed with `len` copies of `byte`: a streamed chunked (h1) upload
    /// of any size, generated on the fly (PUT unless `.method()` is set).
    pub fn upload_generated(mut self, len: u64, byte: u8) -> Self {
        self.data = Some(Data::UploadGenerated { byte, len });
        self
    }

    /// `-o FILE` (the body is then not captured).
    pub fn output(mut self, path: impl AsRef<Path>) -> Self {
        self.output = Some(path.as_ref().to_path_buf());
        self
    }

    /// `--max-time`.
    pub fn max_time(mut self, d: Duration) -> Self {
        self.max_time = d;
        self
    }

    /// `--connect-timeout`.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Any other curl argument, e.g. `--resolve`, `-T`, `--compressed`.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra.push(a.into());
        self
    }

    fn command(&self) -> (Command, Option<StdinData>) {
        let mut cmd = Command::new("curl");
        scrub_env(&mut cmd);
        cmd.arg("-sS")
            .arg("--max-time")
            .arg(format!("{:.3}", self.max_time.as_secs_f64()));
        cmd.arg("--connect-timeout")
            .arg(format!("{:.3}", self.connect_timeout.as_secs_f64()));
        match &self.proxy {
            Some(p) => cmd.arg("--proxy").arg(p),
            None => cmd.arg("--noproxy").arg("*"),
        };
        if let Some(ca) = &self.cacert {
            cmd.arg("--cacert").arg(ca);
        }
        match self.version {
            HttpVersion::Default => {}
            HttpVersion::Http11 => {
                cmd.arg("--http1.1");
            }
            HttpVersion::Http2 => {
                cmd.arg("--http2");
            }
            HttpVersion::Http2PriorKnowledge => {
                cmd.arg("--http2-prior-knowledge");
            }
        }
        if let Some(m) = &self.method {
            cmd.arg("-X").arg(m);
        }
        for h in &self.headers {
            cmd.arg("-H").arg(h);
        }
        let stdin = match &self.data {
            Some(Data::Bytes(b)) => {
                cmd.arg("--data-binary").arg("@-");
                Some(StdinData::Bytes(b.clone()))
            }
            Some(Data::File(f)) => {
                cmd.arg("--data-binary").arg(format!("@{}", f.display()));
                None
            }
            Some(Data::UploadFile(f)) => {
                cmd.arg("-T").arg(f);
                None
            }
            Some(Data::UploadGenerated { byte, len }) => {
                cmd.arg("-T").arg("-");
                Some(StdinData::Repeat {
                    byte: *byte,
                    len: *len,
                })
            }
            None => None,
        };
        cmd.args(&self.extra);
        (cmd, stdin)
    }

    /// Runs curl and collects everything. A non-zero curl exit is not an
    /// error here: tests assert on `exit_code`/`stderr`.
    pub fn run(&self) -> Result<CurlOutput> {
        let tmp = tempfile::Builder::new().prefix("testkit-curl-").tempdir()?;
        let body_path = self
            .output
            .clone()
            .unwrap_or_else(|| tmp.path().join("body"));
        let head_path = tmp.path().join("headers");
        let (mut cmd, stdin) = self.command();
        cmd.arg("-o").arg(&body_path).arg("-D").arg(&head_path);
        cmd.arg("-w")
            .arg("%{http_code} %{http_connect} %{http_version}");
        cmd.arg(&self.url);
        let out = run_with_stdin(cmd, stdin, self.max_time + Duration::from_secs(10))?;
        let w = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut fields = w.split_whitespace();
        let status = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let connect_status = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let http_version = fields.next().unwrap_or("0").to_owned();
        let body = if self.output.is_some() {
            Vec::new()
        } else {
            std::fs::read(&body_path).unwrap_or_default()
        };
        let raw_headers = std::fs::read_to_string(&head_path).unwrap_or_default();
        Ok(CurlOutput {
            status,
            connect_status,
            http_version,
            body,
            headers: last_header_block(&raw_headers),
            raw_headers,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit_code: out.status.code().unwrap_or(-1),
        })
    }

    /// Runs on a blocking thread, for `#[tokio::test]`s that run several clients at once.
    pub async fn run_async(self) -> Result<CurlOutput> {
        tokio::task::spawn_blocking(move || self.run()).await?
    }

    /// Runs `curl -N` and timestamps each body line as it arrives (SSE timing tests).
    pub fn run_timed_lines(&self) -> Result<TimedLines> {
        use std::io::BufRead;
        let (mut cmd, stdin) = self.command();
        cmd.arg("-N").arg(&self.url);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().context("spawning curl")?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = data.write_to(&mut pipe);
            });
        }
        let stdout = child.stdout.take().context("curl stdout")?;
        let mut stderr_pipe = child.stderr.take().context("curl stderr")?;
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut s);
            s
        });
        // curl's --max-time bounds this loop: it closes stdout when it gives up.
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.push((start.elapsed(), line));
        }
        let status = child.wait()?;
        let stderr = err_thread.join().unwrap_or_default();
        Ok(TimedLines {
            lines,
            exit_code: status.code().unwrap_or(-1),
            stderr,
        })
    }
}

/// Parses the last header block of a `-D` dump (the final response; earlier
/// blocks are the proxy's CONNECT reply and 1xx responses).
fn last_header_block(raw: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            blocks.push(Vec::new());
        } else if let (Some(block), Some((n, v))) = (blocks.last_mut(), line.split_once(':')) {
            block.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    blocks.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_block_wins() {
        let raw = "HTTP/1.1 200 Connection established\r\n\r\nHTTP/2 201\r\nx-a: 1\r\nX-B: two words\r\n\r\n";
        let h = super::last_header_block(raw);
        assert_eq!(
            h,
            vec![
                ("x-a".into(), "1".into()),
                ("x-b".into(), "two words".into())
            ]
        );
    }
}
