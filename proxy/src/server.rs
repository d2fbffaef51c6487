//! Wiring: build the shared state from a validated config, bind the listeners, start the
//! shards that accept from them (see `shard`), run until shutdown, then drain. The only place
//! that knows every part of the proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit;
use crate::config::{AuditTarget, Config, Secrets};
use crate::forward::Upstream;
use crate::inject::Injector;
use crate::inspect::Inspector;
use crate::limits::{DRAIN_TIMEOUT, MAX_CONNECTIONS};
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
    #[error("cannot start shard {index}: {source}")]
    Shard {
        index: usize,
        source: std::io::Error,
    },
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

/// Builds the proxy and starts serving: the calling runtime is shard 0 (and serves the admin
/// listener); `shard::default_count() - 1` more threads each run a single-threaded runtime of
/// their own. The caller's runtime should be single-threaded too (`main` makes it so), or its
/// workers compete with the shards for the cores. The CA is passed in (loaded or ephemeral) so
/// the caller decides where its key lives.
/// `secrets` are the tokens named by the config (resolved from the environment by the caller).
pub async fn start(
    config: &Config,
    ca: certs::CertificateAuthority,
    secrets: &Secrets,
) -> Result<Running, ServerError> {
    let policy = Arc::new(Policy::from_config(config));
    let resolver = Arc::new(Resolver::from_config(config));
    let certs = certs::CertCache::new(Arc::new(ca))?;
    let shards = crate::shard::default_count();
    let new_upstream = || {
        Upstream::new(
            Arc::clone(&policy),
            Arc::clone(&resolver),
            &config.upstream.extra_roots,
        )
    };
    let upstream = new_upstream()?;
    let shard_upstreams = (1..shards)
        .map(|_| new_upstream())
        .collect::<Result<Vec<_>, _>>()?;
    let (shards, inboxes) = crate::shard::Shards::new(shards);
    let mut inboxes = inboxes.into_iter();
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
        shard_upstreams,
        shards,
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

    let mut admin_listen = None;
    if let Some(addr) = &config.admin_listen {
        let l = bind(*addr).await?;
        admin_listen = l.local_addr().ok();
        tokio::spawn(crate::admin::serve(l, Arc::clone(&proxy), shutdown.clone()));
    }
    let routes = match config.routes_listen {
        Some(addr) => Some(into_std(bind(addr).await?, addr)?),
        None => None,
    };
    let routes_listen = routes.as_ref().and_then(|l| l.local_addr().ok());
    let shared = Listeners {
        proxy: into_std(listener, config.listen)?,
        routes,
        proxy_slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        routes_slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    let first_inbox = inboxes.next();
    for (index, inbox) in (1..).zip(inboxes) {
        let listeners = shared
            .try_clone()
            .map_err(|source| ServerError::Shard { index, source })?;
        start_shard(index, listeners, inbox, &proxy, &shutdown, &tracker)?;
    }
    if let Some(inbox) = first_inbox {
        tokio::spawn(crate::shard::run_inbox(inbox));
    }
    shared
        .accept(&proxy, &shutdown, &tracker)
        .map_err(|source| ServerError::Shard { index: 0, source })?;
    Ok(Running {
        listen,
        admin_listen,
        routes_listen,
        proxy,
        shutdown,
        tracker,
    })
}

/// The listening sockets every shard accepts from (each shard holds a duplicate descriptor of
/// the same socket, registered with its own runtime), and the connection bounds they share.
struct Listeners {
    proxy: std::net::TcpListener,
    routes: Option<std::net::TcpListener>,
    proxy_slots: Arc<Semaphore>,
    routes_slots: Arc<Semaphore>,
}

impl Listeners {
    fn try_clone(&self) -> std::io::Result<Listeners> {
        Ok(Listeners {
            proxy: self.proxy.try_clone()?,
            routes: self.routes.as_ref().map(|l| l.try_clone()).transpose()?,
            proxy_slots: Arc::clone(&self.proxy_slots),
            routes_slots: Arc::clone(&self.routes_slots),
        })
    }

    /// Starts this shard's accept loops on the current runtime.
    fn accept(
        self,
        proxy: &Arc<Proxy>,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<()> {
        tokio::spawn(crate::accept::serve(
            TcpListener::from_std(self.proxy)?,
            self.proxy_slots,
            Arc::clone(proxy),
            shutdown.clone(),
            tracker.clone(),
            crate::accept::http1::serve_client,
        ));
        if let Some(routes) = self.routes {
            tokio::spawn(crate::accept::serve(
                TcpListener::from_std(routes)?,
                self.routes_slots,
                Arc::clone(proxy),
                shutdown.clone(),
                tracker.clone(),
                crate::route::serve_connection,
            ));
        }
        Ok(())
    }
}

/// Deregisters a bound listener from the starting runtime so every shard can register a
/// duplicate of it with its own (the socket stays non-blocking, as tokio needs).
fn into_std(l: TcpListener, addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    l.into_std()
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Shard `index`: a thread with a single-threaded runtime that accepts from `listeners` until
/// shutdown, then keeps running until the drain ends (its connections' tasks live on it).
fn start_shard(
    index: usize,
    listeners: Listeners,
    inbox: tokio::sync::mpsc::UnboundedReceiver<crate::shard::Job>,
    proxy: &Arc<Proxy>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), ServerError> {
    let runtime = crate::shard::runtime().map_err(|source| ServerError::Shard { index, source })?;
    let (proxy, shutdown, tracker) = (Arc::clone(proxy), shutdown.clone(), tracker.clone());
    std::thread::Builder::new()
        .name(format!("egress-shard-{index}"))
        .spawn(move || {
            crate::shard::enter(index);
            runtime.block_on(async move {
                tokio::spawn(crate::shard::run_inbox(inbox));
                if let Err(e) = listeners.accept(&proxy, &shutdown, &tracker) {
                    tracing::error!(shard = index, error = %e, "shard cannot accept");
                    return;
                }
                shutdown.cancelled().await;
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait()).await;
            });
        })
        .map_err(|source| ServerError::Shard { index, source })?;
    Ok(())
}
