//! One client connection's hold on the proxy: its place under `MAX_CONNECTIONS`, its count in
//! the active-connections gauge, the shutdown signal, and the task tracker the drain waits on.
//!
//! hyper ends the task that serves a client's HTTP/1 connection as soon as a CONNECT is
//! upgraded; the tunnel then runs in a task of its own. Every task that serves the connection
//! holds a clone of its `Lease`, so the slot and the gauge are given back when the last of them
//! ends, not when the CONNECT is answered (which left tunnels uncounted and unbounded).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::ConnectionGuard;

/// Held for as long as any task serves the connection; dropping the last clone frees both.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _open: ConnectionGuard,
    _load: crate::shard::Load,
}

#[derive(Clone)]
pub struct Lease {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _slot: Arc<Slot>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("shutdown", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Lease {
    pub(super) fn new(
        permit: OwnedSemaphorePermit,
        open: ConnectionGuard,
        load: crate::shard::Load,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Lease {
        Lease {
            shutdown,
            tracker,
            _slot: Arc::new(Slot {
                _permit: permit,
                _open: open,
                _load: load,
            }),
        }
    }

    /// Runs `fut` as part of this connection: it keeps the slot, and shutdown waits for it.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let held = self.clone();
        self.tracker.spawn(async move {
            fut.await;
            drop(held);
        });
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
}

/// Drives a pinned hyper server connection to its end; when the lease's shutdown fires, asks it
/// to finish what is in flight and close (HTTP/1: after the current exchange; HTTP/2: GOAWAY).
/// A macro rather than a generic fn: hyper's `graceful_shutdown` is an inherent method of each
/// connection type, and a closure standing in for it trips rustc's `Send` inference for the
/// spawned task (higher-ranked lifetimes, rust-lang/rust#102211).
macro_rules! serve_until_shutdown {
    ($lease:expr, $conn:ident) => {
        tokio::select! {
            out = $conn.as_mut() => out,
            () = $lease.shutdown().cancelled() => {
                $conn.as_mut().graceful_shutdown();
                $conn.await
            }
        }
    };
}
pub(crate) use serve_until_shutdown;
