//! Wiring: build the shared state from a validated config, bind the listeners, run until
//! shutdown, then drain. The only place that knows every part of the proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit;
use crate::config::{AuditTarget, Config};
use crate::forward::Upstream;
use crate::limits::DRAIN_TIMEOUT;
use crate::policy::{Policy, Resolver};
use crate::state::Proxy;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Certs(#[from] certs::CertError),
    #[error("upstream TLS: {0}")]
    Upstream(#[from] crate::forward::ForwardError),
    #[error("audit: {0}")]
    Audit(std::io::Error),
}

/// A started proxy: where it listens, and the handle to stop it.
pub struct Running {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub proxy: Arc<Proxy>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    /// Stops accepting, asks open connections to finish, and waits up to `DRAIN_TIMEOUT`.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.proxy.metrics.active_connections(),
                "drain timed out"
            );
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Builds the proxy and starts serving. The CA is passed in (loaded or ephemeral) so the
/// caller decides where its key lives.
pub async fn start(
    config: &Config,
    ca: certs::CertificateAuthority,
) -> Result<Running, ServerError> {
    let policy = Arc::new(Policy::from_config(config));
    let resolver = Arc::new(Resolver::from_config(config));
    let certs = certs::CertCache::new(Arc::new(ca))?;
    let upstream = Upstream::new(
        Arc::clone(&policy),
        Arc::clone(&resolver),
        &config.upstream.extra_roots,
    )?;
    let sink = match &config.audit {
        AuditTarget::Stdout => audit::Sink::stdout(),
        AuditTarget::Stderr => audit::Sink::stderr(),
        AuditTarget::File(path) => audit::Sink::file(path).map_err(ServerError::Audit)?,
    };
    let proxy = Arc::new(Proxy::new(policy, resolver, certs, upstream, sink));

    let listener = bind(config.listen).await?;
    let listen = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::spawn(crate::accept::serve(
        listener,
        Arc::clone(&proxy),
        shutdown.clone(),
        tracker.clone(),
    ));

    let mut admin_listen = None;
    if let Some(addr) = &config.admin_listen {
        let l = bind(*addr).await?;
        admin_listen = l.local_addr().ok();
        tokio::spawn(crate::admin::serve(l, Arc::clone(&proxy), shutdown.clone()));
    }
    Ok(Running {
        listen,
        admin_listen,
        proxy,
        shutdown,
        tracker,
    })
}
