//! Bidirectional byte splicing for passthrough tunnels and upgraded (WebSocket) connections,
//! with an idle timeout that only fires when *neither* direction has moved for
//! `IDLE_TIMEOUT` — a long one-way download is not idle. On shutdown a tunnel is closed once
//! it has been quiet for `DRAIN_IDLE` (nothing in flight to cut).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::limits::{DRAIN_IDLE, IDLE_TIMEOUT, SPLICE_BUFFER};

/// Bytes moved each way: (client → upstream, upstream → client).
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    pub up: u64,
    pub down: u64,
}

pub async fn splice<A, B>(client: A, upstream: B, shutdown: &CancellationToken) -> Moved
where
    A: AsyncRead + AsyncWrite + Send,
    B: AsyncRead + AsyncWrite + Send,
{
    let meter = Meter::new();
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let up = pump(&mut cr, &mut uw, &meter.up, &meter);
    let down = pump(&mut ur, &mut cw, &meter.down, &meter);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = meter.idle(IDLE_TIMEOUT) => tracing::debug!("splice idle timeout"),
        () = meter.drained(shutdown) => tracing::debug!("splice closed for shutdown"),
    }
    // Counted as they move, so a tunnel cut by the idle timer or a drain reports its bytes too.
    meter.moved()
}

async fn pump<R, W>(r: &mut R, w: &mut W, total: &AtomicU64, meter: &Meter)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; SPLICE_BUFFER];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total.fetch_add(n as u64, Ordering::Relaxed);
        meter.touch();
    }
    let _ = w.shutdown().await;
}

/// Bytes moved each way and when anything last moved: the idle timeout and the drain of an
/// opaque stream (passthrough, WebSocket) both go by it.
pub(crate) struct Meter {
    start: Instant,
    last_ms: AtomicU64,
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
}

impl Meter {
    pub(crate) fn new() -> Meter {
        Meter {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }

    pub(crate) fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn idle_ms(&self) -> u64 {
        self.now_ms()
            .saturating_sub(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once neither direction has moved for `limit`.
    pub(crate) async fn idle(&self, limit: Duration) {
        loop {
            tokio::time::sleep(limit / 4).await;
            if self.idle_ms() >= millis(limit) {
                return;
            }
        }
    }

    /// Resolves once `shutdown` has fired and the stream has then been quiet for `DRAIN_IDLE`:
    /// with no request boundary visible in an opaque stream, quiet is when a close cuts nothing.
    pub(crate) async fn drained(&self, shutdown: &CancellationToken) {
        shutdown.cancelled().await;
        while self.idle_ms() < millis(DRAIN_IDLE) {
            tokio::time::sleep(DRAIN_IDLE / 4).await;
        }
    }

    pub(crate) fn moved(&self) -> Moved {
        Moved {
            up: self.up.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
