//! Wiring: build the shared state from a validated config, bind the listeners, run until
//! shutdown, then drain. The only place that knows every part of the proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit;
use crate::config::{AuditTarget, Config, Secrets};
use crate::forward::Upstream;
use crate::inject::Injector;
use crate::inspect::Inspector;
use crate::limits::DRAIN_TIMEOUT;
use crate::policy::{Policy, Resolver};
use crate::route::RouteTable;
use crate::state::{Parts, Proxy};

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
    #[error("{0}")]
    Inspect(#[from] crate::inspect::InspectError),
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("audit: {0}")]
    Audit(std::io::Error),
}

/// A started proxy: where it listens, and the handle to stop it.
pub struct Running {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub routes_listen: Option<SocketAddr>,
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
        // Lines queued by the last requests reach the audit before the process exits.
        self.proxy.audit.flush();
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Builds the proxy and starts serving. The CA is passed in (loaded or ephemeral) so the
/// caller decides where its key lives.
/// `secrets` are the tokens named by the config (resolved from the environment by the caller).
pub async fn start(
    config: &Config,
    ca: certs::CertificateAuthority,
    secrets: &Secrets,
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
        AuditTarget::File(path) => audit::Sink::file(path),
    }
    .map_err(ServerError::Audit)?;
    let inspector = Arc::new(Inspector::new(config, secrets)?);
    let injector = Injector::new(config, secrets)?;
    let proxy = Arc::new(Proxy::new(Parts {
        policy,
        resolver,
        certs,
        upstream,
        audit: sink,
        inspector,
        injector,
        routes: RouteTable::new(config, secrets)?,
        clients: config.clients.clone(),
    }));

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
        crate::accept::http1::serve_client,
    ));

    let mut admin_listen = None;
    if let Some(addr) = &config.admin_listen {
        let l = bind(*addr).await?;
        admin_listen = l.local_addr().ok();
        tokio::spawn(crate::admin::serve(l, Arc::clone(&proxy), shutdown.clone()));
    }
    let mut routes_listen = None;
    if let Some(addr) = &config.routes_listen {
        let l = bind(*addr).await?;
        routes_listen = l.local_addr().ok();
        tokio::spawn(crate::accept::serve(
            l,
            Arc::clone(&proxy),
            shutdown.clone(),
            tracker.clone(),
            crate::route::serve_connection,
        ));
    }
    Ok(Running {
        listen,
        admin_listen,
        routes_listen,
        proxy,
        shutdown,
        tracker,
    })
}
