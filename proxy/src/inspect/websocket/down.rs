//! Upstream → client: relayed as raw bytes with only frame boundaries tracked (so a close frame
//! of ours is never spliced into a server frame). On a connection the proxy added a credential
//! to (a route, an injected host), the bytes are also checked for the proxy's own tokens
//! (`inspect::reflect`): a WebSocket that echoes its handshake would otherwise hand the agent
//! the credential. A hit cuts the connection.

use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::Boundary;
use super::BOUNDARY_TIMEOUT;
use crate::bump::splice::Meter;
use crate::inspect::reflect::ReflectStream;
use crate::limits::SPLICE_BUFFER;

/// How the downstream relay ended.
#[derive(Debug, Default)]
pub(super) struct Down {
    /// Stopped at a frame boundary because of `cut`: the caller may write its close frame.
    pub at_boundary: bool,
    /// The id of a proxy token the upstream sent; the connection was cut.
    pub reflected: Option<String>,
}

pub(super) async fn pump_down<R, W>(
    mut ur: R,
    cw: &mut W,
    cut: &CancellationToken,
    meter: &Meter,
    mut check: Option<ReflectStream>,
) -> Down
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; SPLICE_BUFFER];
    let mut frames = Boundary::default();
    let mut deadline: Option<Instant> = None;
    loop {
        let stopping = cut.is_cancelled();
        let read = if stopping {
            if frames.at_boundary() {
                return at_boundary(cw, check.as_mut(), meter).await;
            }
            let until = *deadline.get_or_insert_with(|| Instant::now() + BOUNDARY_TIMEOUT);
            match tokio::time::timeout_at(until, ur.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                // A cut wins over data that is ready at the same time: the client is owed the
                // close frame, and an upstream that answers our close by hanging up must not
                // take it away.
                biased;
                () = cut.cancelled() => continue,
                r = ur.read(&mut buf) => r,
            }
        };
        let n = match read {
            // The upstream went away (e.g. on the close frame we just sent it): when we are
            // stopping anyway and no server frame is half relayed, the client still gets our
            // close frame instead of a bare reset.
            Ok(0) | Err(_) if cut.is_cancelled() && frames.at_boundary() => {
                return at_boundary(cw, check.as_mut(), meter).await;
            }
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = frames.advance(&buf[..n], stopping);
        let send = match check.as_mut().map(|c| c.push(&buf[..take])) {
            None => bytes::Bytes::copy_from_slice(&buf[..take]),
            Some(Ok(send)) => send,
            Some(Err(id)) => {
                cut.cancel();
                let _ = cw.shutdown().await;
                return Down {
                    at_boundary: false,
                    reflected: Some(id),
                };
            }
        };
        if cw.write_all(&send).await.is_err() {
            break;
        }
        meter.down.fetch_add(send.len() as u64, Ordering::Relaxed);
        meter.touch();
    }
    if let Some(rest) = check.as_mut().map(ReflectStream::finish) {
        let _ = cw.write_all(&rest).await;
    }
    let _ = cw.shutdown().await;
    Down::default()
}

/// Stopped at a server frame boundary: what the check held (it completed no token) goes out
/// first, so the client is at that boundary too.
async fn at_boundary<W>(cw: &mut W, check: Option<&mut ReflectStream>, meter: &Meter) -> Down
where
    W: AsyncWrite + Unpin,
{
    if let Some(rest) = check.map(ReflectStream::finish) {
        if !rest.is_empty() && cw.write_all(&rest).await.is_ok() {
            meter.down.fetch_add(rest.len() as u64, Ordering::Relaxed);
        }
    }
    Down {
        at_boundary: true,
        reflected: None,
    }
}
