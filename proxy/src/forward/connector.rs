//! The TCP half of every upstream connection. It re-checks policy and dials exactly the
//! addresses the SSRF guard approved, so a pooled client can never be steered to a private
//! address by a DNS answer that changed since the CONNECT was decided (rebinding).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::limits::{UPSTREAM_CONNECT_TIMEOUT, UPSTREAM_DIAL_BUDGET};
use crate::policy::{Denial, Policy, Resolver};

/// Why an upstream connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("upstream refused by policy: {0}")]
    Denied(Box<Denial>),
    #[error("request URI has no host")]
    NoHost,
    #[error("could not connect to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("timed out connecting to {0}")]
    Timeout(SocketAddr),
    #[error("no address to connect to")]
    NoAddress,
    #[error("none of {0} addresses answered in time")]
    Budget(usize),
}

/// Dials upstreams after the policy gate; wrapped by hyper-rustls for TLS.
#[derive(Clone)]
pub struct GuardedConnector {
    policy: Arc<Policy>,
    resolver: Arc<Resolver>,
}

impl GuardedConnector {
    pub fn new(policy: Arc<Policy>, resolver: Arc<Resolver>) -> Self {
        GuardedConnector { policy, resolver }
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
        let host = uri.host().ok_or(ConnectError::NoHost)?;
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            443
        } else {
            80
        };
        let port = uri.port_u16().unwrap_or(default_port);
        let target = self
            .policy
            .check(host, port)
            .map_err(|d| ConnectError::Denied(Box::new(d)))?;
        let addrs = self
            .resolver
            .resolve_checked(&target)
            .await
            .map_err(|d| ConnectError::Denied(Box::new(d)))?;
        dial_first(&addrs).await.map(TokioIo::new)
    }
}

/// Tries the approved addresses in order and returns the first that answers, all within
/// `UPSTREAM_DIAL_BUDGET` (each address also has `UPSTREAM_CONNECT_TIMEOUT`): a name with many
/// dead addresses must not hold a tunnel for minutes.
pub async fn dial_first(addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    match tokio::time::timeout(UPSTREAM_DIAL_BUDGET, dial_each(addrs)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Budget(addrs.len())),
    }
}

async fn dial_each(addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    let mut last = ConnectError::NoAddress;
    for &addr in addrs {
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(source)) => last = ConnectError::Io { addr, source },
            Err(_) => last = ConnectError::Timeout(addr),
        }
    }
    Err(last)
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}
