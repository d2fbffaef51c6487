//! Git smart HTTP through the real `git http-backend` CGI, so clone/fetch/push
//! tests exercise the exact wire protocol git clients speak, not an imitation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::record::{recorded_from_parts, Log, RECORDED_BODY_CAP};
use super::routes::{full, BODY_IDLE_TIMEOUT};
use super::RespBody;

/// Time allowed for the CGI to emit its header block.
const CGI_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The CGI is killed if it is still running after this long.
const CGI_MAX_RUNTIME: Duration = Duration::from_secs(300);
/// Cap on the CGI header block.
const CGI_MAX_HEADER_LINES: usize = 100;
/// Timeout for each setup `git` command.
const GIT_SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A bare repository with one commit (a README), served under `/git/<name>`.
#[derive(Debug, Clone)]
pub struct GitRepo {
    /// The GIT_PROJECT_ROOT the repository lives in.
    pub root: PathBuf,
    /// Repository directory name, e.g. `repo.git`.
    pub name: String,
    /// Full path of the bare repository.
    pub path: PathBuf,
    /// Commit id of the initial commit.
    pub head: String,
}

impl GitRepo {
    /// Creates `root/name` as a bare repo whose `main` holds one commit with a
    /// `README.md`, with `http.receivepack` enabled so the backend would accept
    /// pushes (the proxy, not the backend, must refuse them).
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let work = tempfile::Builder::new()
            .prefix("testkit-gitwork-")
            .tempdir()?;
        let w = work.path();
        setup_git(&["init", "-q", "-b", "main", &path_str(w)?])?;
        std::fs::write(
            w.join("README.md"),
            "# testkit repository\n\nServed by git http-backend.\n",
        )?;
        setup_git(&["-C", &path_str(w)?, "add", "README.md"])?;
        setup_git(&[
            "-C",
            &path_str(w)?,
            "-c",
            "user.name=testkit",
            "-c",
            "user.email=testkit@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "initial commit",
        ])?;
        let path = root.join(name);
        setup_git(&["clone", "-q", "--bare", &path_str(w)?, &path_str(&path)?])?;
        setup_git(&[
            "-C",
            &path_str(&path)?,
            "config",
            "http.receivepack",
            "true",
        ])?;
        setup_git(&["-C", &path_str(&path)?, "config", "http.uploadpack", "true"])?;
        let head = setup_git(&["-C", &path_str(&path)?, "rev-parse", "HEAD"])?;
        Ok(Self {
            root: root.to_path_buf(),
            name: name.to_owned(),
            path,
            head: head.trim().to_owned(),
        })
    }
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str().map(str::to_owned).context("non-UTF-8 path")
}

fn setup_git(args: &[&str]) -> Result<String> {
    let mut cmd = std::process::Command::new("git");
    cmd.args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    let out = crate::clients::run_with_timeout(cmd, None, GIT_SETUP_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Locates `git-http-backend` next to the `git` on PATH (so versions match),
/// falling back to Debian's location.
pub fn find_http_backend() -> Option<PathBuf> {
    let from_git = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-http-backend"));
    from_git
        .into_iter()
        .chain(std::iter::once(PathBuf::from(
            "/usr/lib/git-core/git-http-backend",
        )))
        .find(|p| p.is_file())
}

/// Where and how to run the CGI.
#[derive(Debug, Clone)]
pub struct GitCgi {
    pub backend: PathBuf,
    pub project_root: PathBuf,
}

fn header_str(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Runs one request through the CGI: request body streamed into stdin (and
/// logged), CGI stdout parsed for `Status:`/headers and streamed back.
pub async fn serve(
    cgi: &GitCgi,
    parts: Parts,
    body: Incoming,
    log: &Log,
    peer: SocketAddr,
) -> Response<RespBody> {
    match run(cgi, parts, body, log, peer).await {
        Ok(resp) => resp,
        Err(e) => full(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("testkit git cgi: {e:#}\n"),
        ),
    }
}

async fn run(
    cgi: &GitCgi,
    parts: Parts,
    body: Incoming,
    log: &Log,
    peer: SocketAddr,
) -> Result<Response<RespBody>> {
    let path_info = parts
        .uri
        .path()
        .strip_prefix("/git")
        .unwrap_or("/")
        .to_owned();
    let mut cmd = tokio::process::Command::new(&cgi.backend);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &cgi.project_root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &cgi.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("REMOTE_USER", "testkit")
        .env("REMOTE_ADDR", peer.ip().to_string())
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("GATEWAY_INTERFACE", "CGI/1.1");
    for (env, header) in [
        ("CONTENT_TYPE", "content-type"),
        ("CONTENT_LENGTH", "content-length"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(v) = header_str(&parts, header) {
            cmd.env(env, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", cgi.backend.display()))?;
    let mut stdin = child.stdin.take().context("cgi stdin")?;
    let stdout = child.stdout.take().context("cgi stdout")?;

    let mut rec = recorded_from_parts(&parts);
    let log_in = log.clone();
    tokio::spawn(async move {
        let mut body = body;
        loop {
            match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    rec.body_len += data.len() as u64;
                    log_in.raw(data);
                    let room = RECORDED_BODY_CAP.saturating_sub(rec.body.len());
                    rec.body.extend_from_slice(&data[..data.len().min(room)]);
                    if stdin.write_all(data).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    rec.body_complete = false;
                    break;
                }
            }
        }
        drop(stdin);
        log_in.finish(rec);
    });

    let mut reader = BufReader::new(stdout);
    let (status, headers) = tokio::time::timeout(CGI_HEADER_TIMEOUT, read_cgi_headers(&mut reader))
        .await
        .context("CGI header timeout")??;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CGI_MAX_RUNTIME, child.wait()).await;
    });
    let stream = tokio_util::io::ReaderStream::new(reader).map(|chunk| chunk.map(Frame::data));
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    *resp.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}

async fn read_cgi_headers<R>(reader: &mut R) -> Result<(StatusCode, Vec<(String, String)>)>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    for _ in 0..CGI_MAX_HEADER_LINES {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            bail!("CGI closed stdout before the end of its headers");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line.split_once(':').context("malformed CGI header line")?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    bail!("too many CGI header lines")
}
