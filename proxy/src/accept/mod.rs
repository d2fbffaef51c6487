//! The front door: accept client connections under a connection cap and hand each to the
//! HTTP/1.1 proxy protocol handler. Shutdown stops accepting at once and lets in-flight
//! connections drain (see `server`).

pub mod connect;
pub mod framing;
pub mod http1;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::MAX_CONNECTIONS;
use crate::state::Proxy;

/// Identity of one client connection, carried into every audit event it causes.
#[derive(Debug, Clone, Copy)]
pub struct ClientCx {
    pub conn: u64,
    pub peer: SocketAddr,
}

/// Accepts until `shutdown`; each connection runs on `tracker` so shutdown can wait for it.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let _ = stream.set_nodelay(true);
        let cx = ClientCx {
            conn: proxy.next_conn_id(),
            peer,
        };
        let proxy = Arc::clone(&proxy);
        let shutdown = shutdown.clone();
        let inner_tracker = tracker.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let _open = proxy.metrics.connection_opened();
            http1::serve_client(stream, cx, proxy, shutdown, inner_tracker).await;
        });
    }
}
