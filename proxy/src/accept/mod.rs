//! The front door: accept client connections under a connection cap and hand each to the
//! HTTP/1.1 proxy protocol handler. Shutdown stops accepting at once and lets in-flight
//! connections drain (see `server`).

mod clients;
pub mod connect;
pub mod framing;
pub mod http1;
mod lease;

use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::Proxy;
pub(crate) use lease::serve_until_shutdown;
pub use lease::Lease;

/// Identity of one client connection, carried into every audit event it causes.
#[derive(Debug, Clone, Copy)]
pub struct ClientCx {
    pub conn: u64,
    pub peer: SocketAddr,
}

/// What a listener does with one accepted connection.
pub trait Serve:
    Fn(TcpStream, ClientCx, Arc<Proxy>, Lease) -> Self::Fut + Send + Sync + 'static
{
    type Fut: Future<Output = ()> + Send + 'static;
}

impl<F, Fut> Serve for F
where
    F: Fn(TcpStream, ClientCx, Arc<Proxy>, Lease) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Fut = Fut;
}

/// Accepts until `shutdown`, at most as many connections at once as `slots` holds (shared by
/// every shard accepting from the same listener); each connection runs `serve`
/// under a `Lease` (its slot, counted until every task serving it ends; tracked so shutdown can
/// wait for it). Shared by the proxy and the routes listeners, so `[clients]` guards both: a
/// peer it refuses is closed before anything is read (see `clients`).
pub async fn serve<S: Serve>(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    serve: S,
) {
    let serve = Arc::new(serve);
    loop {
        // Waiting for a slot before accepting pushes overload back onto the kernel's listen
        // queue instead of growing tasks without bound.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let conn = proxy.next_conn_id();
        // A refused peer gives its slot straight back: the permit drops with this iteration.
        let Some(stream) = clients::admit(&proxy, conn, stream, peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let cx = ClientCx { conn, peer };
        let load = proxy.shards.assign();
        let shard = load.shard();
        let start = {
            let (serve, proxy, shutdown, tracker) = (
                Arc::clone(&serve),
                Arc::clone(&proxy),
                shutdown.clone(),
                tracker.clone(),
            );
            move |stream: TcpStream| {
                let lease = Lease::new(
                    permit,
                    proxy.metrics.connection_opened(),
                    load,
                    shutdown,
                    tracker,
                );
                lease.spawn(serve(stream, cx, proxy, lease.clone()));
            }
        };
        if shard == crate::shard::index() {
            start(stream);
            continue;
        }
        // Another shard serves it: the socket leaves this runtime's reactor and joins that
        // one's (see `shard`).
        match stream.into_std() {
            Ok(stream) => proxy.shards.send(
                shard,
                Box::new(move || match TcpStream::from_std(stream) {
                    Ok(stream) => start(stream),
                    Err(e) => tracing::warn!(conn, error = %e, "hand-over to a shard failed"),
                }),
            ),
            Err(e) => tracing::warn!(conn, error = %e, "hand-over to a shard failed"),
        }
    }
}
