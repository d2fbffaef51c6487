//! The upstream side: a pooled hyper client over verified TLS. Pooling is where the proxy wins
//! its speed — an agent that opens a new tunnel per request still reuses our warm upstream
//! connections, so the costly handshake happens once per upstream, not once per request.

pub mod connector;
pub mod headers;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::limits::{IDLE_TIMEOUT, POOL_MAX_IDLE_PER_HOST};
use crate::policy::{Policy, Resolver};
pub use connector::{ConnectError, GuardedConnector};

/// Boxed error type for bodies crossing the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every request and response the proxy produces.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why the upstream exchange failed, already phrased for a 502/504 body.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0}")]
    Denied(Box<crate::policy::Denial>),
    #[error("upstream TLS failed: {0}")]
    Tls(String),
    #[error("upstream connection failed: {0}")]
    Connect(String),
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream exchange failed: {0}")]
    Exchange(String),
    #[error("bad upstream TLS configuration: {0}")]
    Config(String),
}

impl ForwardError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            ForwardError::Denied(_) => http::StatusCode::FORBIDDEN,
            ForwardError::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// Walks the error chain so the client learns *why* (certificate unknown, refused, …)
    /// instead of hyper's generic "client error (Connect)".
    fn classify(err: &hyper_util::client::legacy::Error) -> ForwardError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(c) = e.downcast_ref::<ConnectError>() {
                return match c {
                    ConnectError::Denied(d) => ForwardError::Denied(d.clone()),
                    other => ForwardError::Connect(other.to_string()),
                };
            }
            if let Some(t) = find_rustls(e) {
                return ForwardError::Tls(t.to_string());
            }
            source = e.source();
        }
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        if err.is_connect() {
            ForwardError::Connect(text)
        } else {
            ForwardError::Exchange(text)
        }
    }
}

/// hyper-rustls reports handshake failures as (nested) `io::Error`s wrapping the rustls error,
/// which `source()` skips over; look inside them explicitly.
fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let io = e.downcast_ref::<std::io::Error>()?;
    find_rustls(io.get_ref()?)
}

type HttpClient = Client<HttpsConnector<GuardedConnector>, ProxyBody>;

/// Pooled clients: one negotiating h2/http1.1 by ALPN, one HTTP/1.1-only for WebSocket upgrades
/// (an Upgrade cannot ride an h2 connection). Requests carrying a credential the proxy added
/// get pools of their own: on a shared connection, a request the agent crafted against an
/// upstream with a framing flaw (one that ignores a Content-Length) could swallow the next
/// request, credential included, and store it where the agent can read it.
#[derive(Clone)]
pub struct Upstream {
    client: HttpClient,
    h1_client: HttpClient,
    credentialed: HttpClient,
    credentialed_h1: HttpClient,
}

/// Which pool a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP/1.1 only (WebSocket upgrades, see `request::exchange`).
    pub http1_only: bool,
    /// The request carries a credential the proxy added.
    pub credentialed: bool,
}

impl Upstream {
    /// Builds the clients; `extra_roots` are PEM files trusted besides the web roots.
    pub fn new(
        policy: Arc<Policy>,
        resolver: Arc<Resolver>,
        extra_roots: &[PathBuf],
    ) -> Result<Self, ForwardError> {
        let tls = client_tls_config(extra_roots)?;
        let connector = GuardedConnector::new(policy, resolver);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(connector.clone());
        let https_h1 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Upstream {
            client: build_client(https.clone()),
            h1_client: build_client(https_h1.clone()),
            credentialed: build_client(https),
            credentialed_h1: build_client(https_h1),
        })
    }

    /// Sends a request; the response body streams back as the upstream produces it.
    pub async fn send(
        &self,
        req: http::Request<ProxyBody>,
        route: Route,
    ) -> Result<http::Response<Incoming>, ForwardError> {
        let client = match (route.credentialed, route.http1_only) {
            (false, false) => &self.client,
            (false, true) => &self.h1_client,
            (true, false) => &self.credentialed,
            (true, true) => &self.credentialed_h1,
        };
        match tokio::time::timeout(
            crate::limits::UPSTREAM_RESPONSE_TIMEOUT,
            client.request(req),
        )
        .await
        {
            Err(_) => Err(ForwardError::Timeout),
            Ok(Err(e)) => Err(ForwardError::classify(&e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

fn build_client(connector: HttpsConnector<GuardedConnector>) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Upstream TLS is always verified: web roots plus operator-supplied roots, never a bypass.
fn client_tls_config(extra_roots: &[PathBuf]) -> Result<rustls::ClientConfig, ForwardError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        let pem = std::fs::read(path)
            .map_err(|e| ForwardError::Config(format!("{}: {e}", path.display())))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| ForwardError::Config(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| ForwardError::Config(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(ForwardError::Config(format!(
                "{}: no certificates found",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
