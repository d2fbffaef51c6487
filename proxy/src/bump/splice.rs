//! Bidirectional byte splicing for passthrough tunnels and upgraded (WebSocket) connections,
//! with an idle timeout that only fires when *neither* direction has moved for
//! `IDLE_TIMEOUT` — a long one-way download is not idle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::limits::{IDLE_TIMEOUT, SPLICE_BUFFER};

/// Bytes moved each way: (client → upstream, upstream → client).
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    pub up: u64,
    pub down: u64,
}

pub async fn splice<A, B>(client: A, upstream: B) -> Moved
where
    A: AsyncRead + AsyncWrite + Send,
    B: AsyncRead + AsyncWrite + Send,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let up = pump(&mut cr, &mut uw, &last, start);
    let down = pump(&mut ur, &mut cw, &last, start);
    let watchdog = async {
        loop {
            tokio::time::sleep(IDLE_TIMEOUT / 4).await;
            let idle_for = start.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            if idle_for >= IDLE_TIMEOUT.as_millis() as u64 {
                return;
            }
        }
    };
    let mut moved = Moved::default();
    tokio::select! {
        (u, d) = async { tokio::join!(up, down) } => { moved.up = u; moved.down = d; }
        () = watchdog => tracing::debug!("splice idle timeout"),
    }
    moved
}

async fn pump<R, W>(r: &mut R, w: &mut W, last: &AtomicU64, start: Instant) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; SPLICE_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
    total
}
