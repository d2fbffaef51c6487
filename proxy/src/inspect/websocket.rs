//! DLP for upgraded WebSocket connections. The client→server direction is parsed into RFC 6455
//! frames and every data message (text/binary plus its continuation frames) streams through one
//! `BodyScanner`; a frame's original bytes go upstream only once the scanner has cleared its
//! whole payload, so a secret split across frames is caught before any frame carrying part of it
//! leaves. The server→client direction is relayed as raw bytes (`down`); only its frame
//! boundaries are tracked, so that on a block our close frame (1008) is never spliced into a
//! server frame, and on a credentialed connection it is checked for the proxy's own tokens.
//! permessage-deflate is stripped from the upgrade request ([`refuse_compression`]): a
//! compressed frame could not be scanned, and one arriving anyway (RSV1) ends the connection.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlp_rules::{BodyContext, BodyScanner, Finding};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::reflect::{ReflectStream, Reflection};
use super::{Inspector, Verdict};
use crate::audit::{Decision, Event};
use crate::bump::splice::{splice, Meter, Moved};
use crate::limits::IDLE_TIMEOUT;
use crate::state::Proxy;

/// Largest client message (sum of its frames' payloads) held back while it is scanned; a
/// larger one closes the connection with 1009 rather than pass unscanned.
pub const MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// Most frames held back at once: bounds the queue when a client floods tiny (or empty)
/// continuation frames that the scanner cannot clear yet.
pub const MAX_HELD_FRAMES: usize = 16 * 1024;
/// After a block, how long the server→client relay may run to reach a frame boundary before
/// the client connection is cut without a close frame.
pub const BOUNDARY_TIMEOUT: Duration = Duration::from_secs(5);
/// Findings kept for the audit line of one connection (the first blocking one decides).
const MAX_AUDITED_FINDINGS: usize = 64;

/// Removes `Sec-WebSocket-Extensions` from an upgrade request so no compression (or any other
/// extension that rewrites payloads) is negotiated: the scanner must see plain payloads.
pub fn refuse_compression(headers: &mut HeaderMap) {
    headers.remove(http::header::SEC_WEBSOCKET_EXTENSIONS);
}

/// Why the relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A side closed its connection.
    Closed,
    /// Neither direction moved for `IDLE_TIMEOUT`.
    Idle,
    /// The proxy is shutting down and the connection was quiet for `DRAIN_IDLE`.
    Shutdown,
    /// A blocking DLP finding in a client message (redacted by the engine).
    Finding(Box<Finding>),
    /// The client broke RFC 6455 or sent frames we cannot scan (extension bits).
    Protocol(&'static str),
    /// A client message above [`MAX_MESSAGE_BYTES`].
    TooBig,
    /// The scanner failed on a message.
    Unscannable(String),
    /// The upstream sent one of the proxy's tokens (by id) on a credentialed connection.
    Reflected(String),
}

impl Stop {
    /// The close code and reason sent both ways when the proxy ends the connection itself.
    fn close(&self) -> Option<(u16, String)> {
        match self {
            // Cut mid-frame: no close frame can follow.
            Stop::Closed | Stop::Idle | Stop::Shutdown | Stop::Reflected(_) => None,
            Stop::Finding(f) => Some((1008, format!("egress-proxy: DLP rule {}", f.rule_id))),
            Stop::Protocol(why) => Some((1002, format!("egress-proxy: {why}"))),
            Stop::TooBig => Some((1009, "egress-proxy: message too big to scan".into())),
            Stop::Unscannable(_) => Some((1008, "egress-proxy: message not scannable".into())),
        }
    }
}

/// What an inspected relay did.
#[derive(Debug)]
pub struct Relayed {
    pub moved: Moved,
    pub verdict: Verdict,
    pub stop: Stop,
}

/// Relays an upgraded connection; with an `inspector` (the destination's: see
/// `Inspector::for_target`), scans client messages, and with a `reflection` (the connection
/// carries a credential the proxy added) checks server bytes for the proxy's tokens; records
/// the findings and the outcome in `event` (which the caller emits) and the metrics.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    inspector: Option<Arc<Inspector>>,
    reflection: Option<Arc<Reflection>>,
    proxy: &Proxy,
    event: &mut Event,
    shutdown: &CancellationToken,
) -> Moved
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
{
    let inspector = match (inspector, &reflection) {
        (Some(i), _) => i,
        // DLP is off here, but the server side is checked: parse and relay client frames with
        // the proxy's engine, whose findings this mode does not act on.
        (None, Some(_)) => Arc::clone(&proxy.inspector),
        (None, None) => return splice(client, upstream, shutdown).await,
    };
    let r = relay_inspected(client, upstream, inspector, reflection, shutdown).await;
    if !r.verdict.findings.is_empty() {
        proxy.metrics.dlp_findings(r.verdict.findings.len() as u64);
        event.findings.extend(r.verdict.audit_findings());
    }
    let status = event.status;
    match &r.stop {
        Stop::Closed | Stop::Idle | Stop::Shutdown => {}
        Stop::Finding(f) => {
            event.outcome(
                Decision::Deny,
                status,
                format!("dlp: {} in {}", f.rule_id, f.location),
            );
            proxy.metrics.decision("deny", "dlp");
        }
        Stop::Protocol(why) => {
            event.outcome(Decision::Deny, status, format!("websocket: {why}"));
            proxy.metrics.decision("deny", "protocol");
        }
        Stop::TooBig => {
            let why = format!("websocket message larger than {MAX_MESSAGE_BYTES} bytes");
            event.outcome(Decision::Deny, status, why);
            proxy.metrics.decision("deny", "dlp");
        }
        Stop::Unscannable(why) => {
            let why = format!("websocket message could not be scanned: {why}");
            event.outcome(Decision::Deny, status, why);
            proxy.metrics.decision("deny", "dlp");
        }
        Stop::Reflected(id) => {
            let why = format!(
                "the upstream's WebSocket data held the credential {id} the proxy added; connection cut"
            );
            event.outcome(Decision::Deny, status, why);
            proxy.metrics.decision("deny", "reflect");
        }
    }
    r.moved
}

/// The inspected relay itself, independent of audit and metrics.
pub async fn relay_inspected<C, U>(
    client: C,
    upstream: U,
    inspector: Arc<Inspector>,
    reflection: Option<Arc<Reflection>>,
    shutdown: &CancellationToken,
) -> Relayed
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
{
    let meter = Meter::new();
    let cut = CancellationToken::new();
    let mut inbound = Inbound::new(inspector);
    let (cr, mut cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let outcome = tokio::select! {
        r = async {
            tokio::join!(
                pump_up(cr, uw, &mut inbound, &cut, &meter),
                down::pump_down(ur, &mut cw, &cut, &meter, reflection.map(ReflectStream::new)),
            )
        } => Some(r),
        () = meter.idle(IDLE_TIMEOUT) => None,
        () = meter.drained(shutdown) => Some((Stop::Shutdown, down::Down::default())),
    };
    let stop = match outcome {
        None => Stop::Idle,
        Some((
            _,
            down::Down {
                reflected: Some(id),
                ..
            },
        )) => Stop::Reflected(id),
        Some((stop, down)) => {
            if let (true, Some((code, reason))) = (down.at_boundary, stop.close()) {
                let frame = close_frame(code, &reason, None);
                if cw.write_all(&frame).await.is_ok() {
                    meter.down.fetch_add(frame.len() as u64, Ordering::Relaxed);
                }
            }
            stop
        }
    };
    let _ = cw.shutdown().await;
    Relayed {
        moved: meter.moved(),
        verdict: inbound.verdict,
        stop,
    }
}

/// Client → upstream: parse, scan, forward cleared frames. On a refusal, tells the other
/// direction to stop (`cut`) and closes the upstream with the same close code.
async fn pump_up<R, W>(
    mut cr: R,
    mut uw: W,
    inbound: &mut Inbound,
    cut: &CancellationToken,
    meter: &Meter,
) -> Stop
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = FrameReader::default();
    let stop = 'relay: loop {
        loop {
            let frame = match reader.next(|h| inbound.admit(h)) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(stop) => break 'relay stop,
            };
            let cleared = match inbound.frame(frame) {
                Ok(c) => c,
                Err(stop) => break 'relay stop,
            };
            for bytes in cleared {
                if uw.write_all(&bytes).await.is_err() {
                    break 'relay Stop::Closed;
                }
                meter.up.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                meter.touch();
            }
        }
        // The other direction may end the connection (a token in the server's data).
        let filled = tokio::select! {
            () = cut.cancelled() => break Stop::Closed,
            r = reader.fill(&mut cr) => r,
        };
        match filled {
            Ok(0) | Err(_) => break Stop::Closed,
            Ok(_) => meter.touch(),
        }
    };
    if let Some((code, reason)) = stop.close() {
        cut.cancel();
        // Never inside a frame: only whole frames are forwarded upstream.
        let mask: [u8; 4] = rand::random();
        let _ = uw.write_all(&close_frame(code, &reason, Some(mask))).await;
    }
    let _ = uw.shutdown().await;
    stop
}

/// The message state of the client direction: the scanner of the data message in progress and
/// the frames it has not yet cleared.
struct Inbound {
    inspector: Arc<Inspector>,
    scanner: Option<BodyScanner>,
    /// Payload bytes of the message in progress so far.
    msg_len: u64,
    /// Frames not yet forwarded, with the message offset their payload ends at.
    held: VecDeque<(u64, Bytes)>,
    verdict: Verdict,
}

impl Inbound {
    fn new(inspector: Arc<Inspector>) -> Inbound {
        Inbound {
            inspector,
            scanner: None,
            msg_len: 0,
            held: VecDeque::new(),
            verdict: Verdict::default(),
        }
    }

    /// Checks a header before its payload is buffered, so a bad or oversized frame is refused
    /// without reading it.
    fn admit(&self, h: &Header) -> Result<(), Stop> {
        if h.rsv != 0 {
            return Err(Stop::Protocol(
                "frame with RSV bits (extensions are not negotiated)",
            ));
        }
        if h.mask.is_none() {
            return Err(Stop::Protocol("unmasked client frame"));
        }
        match h.opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                let too_long = h.len > MAX_MESSAGE_BYTES.saturating_sub(self.msg_len);
                if too_long || self.held.len() >= MAX_HELD_FRAMES {
                    return Err(Stop::TooBig);
                }
                Ok(())
            }
            OP_CLOSE | OP_PING | OP_PONG if !h.fin || h.len > 125 => {
                Err(Stop::Protocol("fragmented or oversized control frame"))
            }
            OP_CLOSE | OP_PING | OP_PONG => Ok(()),
            _ => Err(Stop::Protocol("reserved opcode")),
        }
    }

    /// Takes one whole (admitted) frame; returns the frames now cleared, in order.
    fn frame(&mut self, (h, raw): (Header, Bytes)) -> Result<Vec<Bytes>, Stop> {
        let mut payload = raw.get(h.header_len..).unwrap_or_default().to_vec();
        if let Some(key) = h.mask {
            unmask(&mut payload, key);
        }
        if h.opcode >= OP_CLOSE {
            // Control payloads (≤ 125 bytes) are scanned alone and pass at once.
            if !payload.is_empty() {
                let mut scanner = self.new_scanner()?;
                let findings = feed(&mut scanner, &payload, true)?.findings;
                self.judge(findings)?;
            }
            if h.opcode == OP_CLOSE {
                // Nothing may follow a close: an unfinished message is dropped, never sent.
                self.scanner = None;
                self.held.clear();
                self.msg_len = 0;
            }
            return Ok(vec![raw]);
        }
        let scanner = match (self.scanner.take(), h.opcode) {
            (None, OP_CONTINUATION) => {
                return Err(Stop::Protocol("continuation outside a message"))
            }
            (Some(_), OP_TEXT | OP_BINARY) => return Err(Stop::Protocol("message interleaved")),
            (Some(s), _) => s,
            (None, _) => self.new_scanner()?,
        };
        let mut scanner = scanner;
        let progress = feed(&mut scanner, &payload, false)?;
        self.judge(progress.findings)?;
        self.msg_len += payload.len() as u64;
        self.held.push_back((self.msg_len, raw));
        let releasable = if h.fin {
            let done = feed(&mut scanner, &[], true)?;
            self.judge(done.findings)?;
            self.msg_len = 0;
            u64::MAX
        } else {
            self.scanner = Some(scanner);
            progress.releasable
        };
        let mut cleared = Vec::new();
        while let Some((end, _)) = self.held.front() {
            if *end > releasable {
                break;
            }
            if let Some((_, bytes)) = self.held.pop_front() {
                cleared.push(bytes);
            }
        }
        Ok(cleared)
    }

    fn new_scanner(&self) -> Result<BodyScanner, Stop> {
        self.inspector
            .engine()
            .body_scanner(BodyContext::websocket_message())
            .map_err(|e| Stop::Unscannable(e.to_string()))
    }

    /// Records findings; a blocking one ends the connection.
    fn judge(&mut self, findings: Vec<Finding>) -> Result<(), Stop> {
        if findings.is_empty() {
            return Ok(());
        }
        let v = self.inspector.judge(findings);
        let blocking = v.blocking.clone();
        self.verdict.merge(v);
        self.verdict.findings.truncate(MAX_AUDITED_FINDINGS);
        match blocking {
            Some(f) => Err(Stop::Finding(Box::new(f))),
            None => Ok(()),
        }
    }
}

/// Feeds a payload (and finishes the message when `last`).
fn feed(scanner: &mut BodyScanner, data: &[u8], last: bool) -> Result<dlp_rules::Progress, Stop> {
    let unscannable = |e: dlp_rules::DlpError| Stop::Unscannable(e.to_string());
    let mut p = scanner.feed(data).map_err(unscannable)?;
    if last {
        let done = scanner.finish().map_err(unscannable)?;
        p.findings.extend(done.findings);
        p.releasable = done.releasable;
    }
    Ok(p)
}

mod down;
/// A frame header (RFC 6455 §5.2).
mod frame;
use frame::*;

#[cfg(test)]
mod tests;
