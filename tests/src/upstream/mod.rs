//! A real HTTPS (or plain HTTP) origin server on loopback that records every
//! byte it receives. It owns its own tokio runtime so it works the same from
//! sync tests and `#[tokio::test]`s, and so a test blocking on `curl` cannot
//! starve it.

mod git;
mod record;
mod routes;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tempfile::TempDir;
use tokio_rustls::TlsAcceptor;

pub use git::{find_http_backend, GitRepo};
pub use record::{Recorded, RAW_LOG_CAP, RECORDED_BODY_CAP};

use git::GitCgi;
use record::Log;

/// Response body type of every route.
pub type RespBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// TLS handshake must finish within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1 request heads must arrive within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run an [`Upstream`].
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// `(cert_pem, key_pem)`; `None` serves plain HTTP (h1, and h2c with prior knowledge).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// ALPN protocols offered, in preference order; default `["h2", "http/1.1"]`.
    pub alpn: Vec<String>,
    /// Listen address; default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// GIT_PROJECT_ROOT served under `/git/`.
    pub git_root: Option<PathBuf>,
    /// Create a temp GIT_PROJECT_ROOT holding a bare `repo.git` (see [`GitRepo`]).
    pub git_repo: bool,
    /// Append one JSON line per finished request to this file.
    pub record_file: Option<PathBuf>,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            tls: None,
            alpn: vec!["h2".into(), "http/1.1".into()],
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            git_root: None,
            git_repo: false,
            record_file: None,
        }
    }
}

impl UpstreamOptions {
    /// TLS upstream offering h2 and http/1.1.
    pub fn tls(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            tls: Some((cert.into(), key.into())),
            ..Self::default()
        }
    }

    /// Plain-HTTP upstream.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Replaces the ALPN list, e.g. `&["http/1.1"]` for an h1-only upstream.
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Shorthand for `alpn(&["http/1.1"])`.
    pub fn h1_only(self) -> Self {
        self.alpn(&["http/1.1"])
    }

    /// Serve a fresh `repo.git` under `/git/repo.git`.
    pub fn with_git_repo(mut self) -> Self {
        self.git_repo = true;
        self
    }

    /// Listen on a specific address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
}

struct Ctx {
    log: Log,
    git: Option<GitCgi>,
}

/// A running test upstream; shuts down (all tasks aborted) when dropped.
pub struct Upstream {
    /// The bound address (`127.0.0.1:PORT`).
    pub addr: SocketAddr,
    tls: bool,
    log: Log,
    git_repo: Option<GitRepo>,
    git_root: Option<PathBuf>,
    runtime: Option<tokio::runtime::Runtime>,
    _git_dir: Option<TempDir>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Binds, then serves on a private runtime until dropped.
    pub fn start(opts: UpstreamOptions) -> Result<Self> {
        let acceptor = match &opts.tls {
            Some((cert, key)) => Some(TlsAcceptor::from(server_config(cert, key, &opts.alpn)?)),
            None => None,
        };
        let (git_dir, git_repo, git_root) = if opts.git_repo {
            let dir = tempfile::Builder::new().prefix("testkit-git-").tempdir()?;
            let repo = GitRepo::create(dir.path(), "repo.git")?;
            let root = dir.path().to_path_buf();
            (Some(dir), Some(repo), Some(root))
        } else {
            (None, None, opts.git_root.clone())
        };
        let git = match &git_root {
            Some(root) => Some(GitCgi {
                backend: find_http_backend().context("git-http-backend not found")?,
                project_root: root.clone(),
            }),
            None => None,
        };
        let log = match &opts.record_file {
            Some(path) => Log::with_file(path)?,
            None => Log::default(),
        };
        let std_listener = std::net::TcpListener::bind(opts.listen)
            .with_context(|| format!("binding test upstream on {}", opts.listen))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit-upstream")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let ctx = Arc::new(Ctx {
            log: log.clone(),
            git,
        });
        runtime.spawn(accept_loop(listener, acceptor, ctx));
        Ok(Self {
            addr,
            tls: opts.tls.is_some(),
            log,
            git_repo,
            git_root,
            runtime: Some(runtime),
            _git_dir: git_dir,
        })
    }

    /// Runs until the process ends (for the `test-upstream` binary).
    pub fn run_forever(self) -> ! {
        loop {
            std::thread::park();
        }
    }

    /// Listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://HOST:PORT` (or `http://` for a plain upstream) for the given host name.
    pub fn base_url(&self, host: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}", self.addr.port())
    }

    /// `base_url(host)` + `path` (path starts with `/`).
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("{}{path}", self.base_url(host))
    }

    /// The served git repo, when started with [`UpstreamOptions::with_git_repo`].
    pub fn git_repo(&self) -> Option<&GitRepo> {
        self.git_repo.as_ref()
    }

    /// GIT_PROJECT_ROOT served under `/git/`.
    pub fn git_root(&self) -> Option<&Path> {
        self.git_root.as_deref()
    }

    /// Snapshot of every finished request, in completion order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.requests()
    }

    /// Recorded requests whose path equals `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.log
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Whether `needle` appears anywhere in what was ever received: request
    /// lines, headers, bodies (except `/upload`, which is only counted), and
    /// client WebSocket messages. Bytes are logged as they arrive.
    pub fn received_bytes_contains(&self, needle: &[u8]) -> bool {
        self.log.raw_contains(needle)
    }

    /// Everything received so far (see [`Self::received_bytes_contains`]).
    pub fn received_bytes(&self) -> Vec<u8> {
        self.log.raw_snapshot()
    }

    /// True if the raw log reached [`RAW_LOG_CAP`] and dropped bytes.
    pub fn received_log_truncated(&self) -> bool {
        self.log.raw_truncated()
    }

    /// Requests whose body is still arriving.
    pub fn in_flight(&self) -> usize {
        self.log.in_flight()
    }

    /// Waits until no request body is in flight (e.g. after the proxy aborted
    /// an upload), returning false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.log.in_flight() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Forgets recorded requests and bytes.
    pub fn clear(&self) {
        self.log.clear();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so it is safe inside an async test too.
            rt.shutdown_background();
        }
    }
}

fn server_config(cert: &Path, key: &Path, alpn: &[String]) -> Result<Arc<rustls::ServerConfig>> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(cert)?))
        .collect::<Result<Vec<_>, _>>()
        .context("reading upstream cert")?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(key)?))?
        .context("no private key in key file")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: Option<TlsAcceptor>,
    ctx: Arc<Ctx>,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let ctx = ctx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match acceptor {
                None => serve_conn(TokioIo::new(tcp), None, ctx, peer).await,
                Some(acceptor) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    serve_conn(TokioIo::new(tls), alpn, ctx, peer).await;
                }
            }
        });
    }
}

async fn serve_conn<I>(io: TokioIo<I>, alpn: Option<Vec<u8>>, ctx: Arc<Ctx>, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1") => builder.http1_only(),
        _ => builder,
    };
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx, peer).await) }
    });
    let _ = builder.serve_connection_with_upgrades(io, service).await;
}

async fn handle(mut req: Request<Incoming>, ctx: &Ctx, peer: SocketAddr) -> Response<RespBody> {
    req.extensions_mut().insert(record::Peer(peer));
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    ctx.log.begin(&parts);
    let path = parts.uri.path().to_owned();
    let log = &ctx.log;
    match path.as_str() {
        "/echo" => routes::echo(parts, body, log).await,
        "/gzip-echo" => routes::gzip_echo(parts, body, log).await,
        "/sse" => routes::sse(parts, body, log).await,
        "/upload" => routes::upload(parts, body, log).await,
        "/download" => routes::download(parts, body, log).await,
        "/duplex" => routes::duplex(parts, body, log).await,
        "/ws" => ws::upgrade(parts, on_upgrade, log),
        p if p.starts_with("/status/") => {
            let code = p.trim_start_matches("/status/").to_owned();
            routes::status(parts, body, log, &code).await
        }
        p if p.starts_with("/git/") => match &ctx.git {
            Some(cgi) => git::serve(cgi, parts, body, log, peer).await,
            None => routes::not_found(parts, body, log).await,
        },
        _ => routes::not_found(parts, body, log).await,
    }
}
