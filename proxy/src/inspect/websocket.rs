//! DLP for upgraded WebSocket connections. The client→server direction is parsed into RFC 6455
//! frames and every data message (text/binary plus its continuation frames) streams through one
//! `BodyScanner`; a frame's original bytes go upstream only once the scanner has cleared its
//! whole payload, so a secret split across frames is caught before any frame carrying part of it
//! leaves. The server→client direction is relayed as raw bytes; only its frame boundaries are
//! tracked, so that on a block our close frame (1008) is never spliced into a server frame.
//! permessage-deflate is stripped from the upgrade request ([`refuse_compression`]): a
//! compressed frame could not be scanned, and one arriving anyway (RSV1) ends the connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dlp_rules::{BodyContext, BodyScanner, Finding};
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Inspector, Verdict};
use crate::audit::{Decision, Event};
use crate::bump::splice::{splice, Moved};
use crate::limits::{IDLE_TIMEOUT, SPLICE_BUFFER};
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

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

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
    /// A blocking DLP finding in a client message (redacted by the engine).
    Finding(Box<Finding>),
    /// The client broke RFC 6455 or sent frames we cannot scan (extension bits).
    Protocol(&'static str),
    /// A client message above [`MAX_MESSAGE_BYTES`].
    TooBig,
    /// The scanner failed on a message.
    Unscannable(String),
}

impl Stop {
    /// The close code and reason sent both ways when the proxy ends the connection itself.
    fn close(&self) -> Option<(u16, String)> {
        match self {
            Stop::Closed | Stop::Idle => None,
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

/// Relays an upgraded connection; with `inspecting`, scans client messages and records the
/// findings and the outcome in `event` (which the caller emits) and the metrics.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    inspecting: bool,
    proxy: &Proxy,
    event: &mut Event,
) -> Moved
where
    C: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
{
    if !inspecting {
        return splice(client, upstream).await;
    }
    let r = relay_inspected(client, upstream, Arc::clone(&proxy.inspector)).await;
    if !r.verdict.findings.is_empty() {
        proxy.metrics.dlp_findings(r.verdict.findings.len() as u64);
        event.findings.extend(r.verdict.audit_findings());
    }
    let status = event.status;
    match &r.stop {
        Stop::Closed | Stop::Idle => {}
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
    }
    r.moved
}

/// The inspected relay itself, independent of audit and metrics.
pub async fn relay_inspected<C, U>(client: C, upstream: U, inspector: Arc<Inspector>) -> Relayed
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
                pump_down(ur, &mut cw, &cut, &meter),
            )
        } => Some(r),
        () = meter.idle(IDLE_TIMEOUT) => None,
    };
    let stop = match outcome {
        None => Stop::Idle,
        Some((stop, at_boundary)) => {
            if let (true, Some((code, reason))) = (at_boundary, stop.close()) {
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
        moved: Moved {
            up: meter.up.load(Ordering::Relaxed),
            down: meter.down.load(Ordering::Relaxed),
        },
        verdict: inbound.verdict,
        stop,
    }
}

/// Bytes moved each way and when anything last moved (for the idle timeout).
struct Meter {
    start: Instant,
    last_ms: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once neither direction has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::time::sleep(limit / 4).await;
            let idle_for = self
                .now_ms()
                .saturating_sub(self.last_ms.load(Ordering::Relaxed));
            if idle_for >= limit_ms {
                return;
            }
        }
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
        match reader.fill(&mut cr).await {
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

/// Upstream → client, raw. Returns true when it stopped at a frame boundary because of `cut`
/// (the caller may then write its close frame).
async fn pump_down<R, W>(mut ur: R, cw: &mut W, cut: &CancellationToken, meter: &Meter) -> bool
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
                return true;
            }
            let until = *deadline.get_or_insert_with(|| Instant::now() + BOUNDARY_TIMEOUT);
            match tokio::time::timeout_at(until, ur.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => return false,
            }
        } else {
            tokio::select! {
                () = cut.cancelled() => continue,
                r = ur.read(&mut buf) => r,
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = frames.advance(&buf[..n], stopping);
        if cw.write_all(&buf[..take]).await.is_err() {
            break;
        }
        meter.down.fetch_add(take as u64, Ordering::Relaxed);
        meter.touch();
    }
    let _ = cw.shutdown().await;
    false
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

/// A frame header (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    header_len: usize,
}

/// Parses the header at the start of `buf`; `None` until all of it has arrived.
fn parse_header(buf: &[u8]) -> Option<Header> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        mask,
        len,
        header_len: at,
    })
}

fn unmask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A close frame; masked (with `mask`) when it goes to the server.
fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend(reason.bytes().filter(u8::is_ascii).take(123));
    let mut frame = vec![0x80 | OP_CLOSE, payload.len() as u8];
    if let Some(key) = mask {
        frame[1] |= 0x80;
        frame.extend_from_slice(&key);
        unmask(&mut payload, key);
    }
    frame.extend_from_slice(&payload);
    frame
}

/// Accumulates client bytes and cuts them into whole frames (original bytes, still masked).
#[derive(Default)]
struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> std::io::Result<usize> {
        self.buf.reserve(SPLICE_BUFFER);
        r.read_buf(&mut self.buf).await
    }

    /// The next whole frame, once `admit` accepted its header (it may run more than once per
    /// frame while the payload arrives).
    fn next<E>(
        &mut self,
        admit: impl FnOnce(&Header) -> Result<(), E>,
    ) -> Result<Option<(Header, Bytes)>, E> {
        let Some(h) = parse_header(&self.buf) else {
            return Ok(None);
        };
        admit(&h)?;
        let total = usize::try_from(h.len)
            .unwrap_or(usize::MAX)
            .saturating_add(h.header_len);
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some((h, self.buf.split_to(total).freeze())))
    }
}

/// Tracks server frame boundaries in a raw byte stream without buffering payloads.
#[derive(Default)]
struct Boundary {
    head: Vec<u8>,
    remaining: u64,
}

impl Boundary {
    fn at_boundary(&self) -> bool {
        self.head.is_empty() && self.remaining == 0
    }

    /// Consumes `data` (all of it, or with `stop` only up to the next frame boundary) and
    /// returns how many bytes were consumed.
    fn advance(&mut self, data: &[u8], stop: bool) -> usize {
        let mut i = 0;
        loop {
            if (stop && self.at_boundary()) || i == data.len() {
                return i;
            }
            if self.remaining > 0 {
                let left = data.len() - i;
                let take = usize::try_from(self.remaining).map_or(left, |r| r.min(left));
                i += take;
                self.remaining -= take as u64;
                continue;
            }
            self.head.push(data[i]);
            i += 1;
            if let Some(h) = parse_header(&self.head) {
                self.remaining = h.len;
                self.head.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Secrets};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn inspector() -> Arc<Inspector> {
        let cfg = Config::embedded_default().unwrap();
        Arc::new(Inspector::new(&cfg, &Secrets::default()).unwrap())
    }

    /// A synthetic Anthropic-shaped key (random alphabet, never a real one).
    fn secret() -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let body: String = (0..93)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHA[(x % ALPHA.len() as u64) as usize] as char
            })
            .collect();
        format!("sk-ant-api03-{body}AA")
    }

    fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mut p = payload.to_vec();
        if let Some(k) = mask {
            f.extend_from_slice(&k);
            unmask(&mut p, k);
        }
        f.extend_from_slice(&p);
        f
    }

    fn drain(r: &mut FrameReader) -> Vec<(Header, Bytes)> {
        let mut out = Vec::new();
        while let Some(f) = r.next(|_| Ok::<(), ()>(())).unwrap() {
            out.push(f);
        }
        out
    }

    fn payload_of((h, raw): &(Header, Bytes)) -> Vec<u8> {
        let mut p = raw[h.header_len..].to_vec();
        if let Some(k) = h.mask {
            unmask(&mut p, k);
        }
        p
    }

    #[test]
    fn header_lengths_7_16_64_bit_and_incomplete_prefixes() {
        for (len, header_len) in [(5usize, 6usize), (125, 6), (126, 8), (300, 8), (70_000, 14)] {
            let f = encode(true, OP_BINARY, &vec![b'a'; len], Some(KEY));
            for cut in 0..header_len {
                assert_eq!(parse_header(&f[..cut]), None, "len {len} cut {cut}");
            }
            let h = parse_header(&f).unwrap();
            assert_eq!(
                (h.len, h.header_len, h.mask),
                (len as u64, header_len, Some(KEY))
            );
            assert!(h.fin && h.rsv == 0 && h.opcode == OP_BINARY);
        }
        let h = parse_header(&encode(false, OP_TEXT, b"x", None)).unwrap();
        assert!(!h.fin && h.mask.is_none() && h.header_len == 2);
    }

    #[test]
    fn reader_yields_the_same_frames_at_every_split_offset() {
        let frames = [
            encode(false, OP_TEXT, b"hello ", Some(KEY)),
            encode(true, OP_CONTINUATION, &[7u8; 300], Some([1, 2, 3, 4])),
            encode(true, OP_PING, b"", Some(KEY)),
            encode(true, OP_BINARY, &[0u8; 126], Some([9, 9, 9, 9])),
            encode(true, OP_CLOSE, &1000u16.to_be_bytes(), Some(KEY)),
        ];
        let stream: Vec<u8> = frames.concat();
        let mut whole = FrameReader::default();
        whole.buf.extend_from_slice(&stream);
        let expected = drain(&mut whole);
        assert_eq!(expected.len(), frames.len());
        assert_eq!(payload_of(&expected[1]), vec![7u8; 300]);
        for split in 0..=stream.len() {
            for second in [split, (split + 1).min(stream.len())] {
                let mut r = FrameReader::default();
                let mut got = Vec::new();
                for part in [&stream[..split], &stream[split..second], &stream[second..]] {
                    r.buf.extend_from_slice(part);
                    got.extend(drain(&mut r));
                }
                assert_eq!(got, expected, "split at {split}/{second}");
            }
        }
    }

    #[test]
    fn reader_handles_64_bit_lengths_split_anywhere_in_the_header() {
        let payload: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let f = encode(true, OP_BINARY, &payload, Some(KEY));
        for split in (0..=20).chain([f.len() / 2, f.len() - 1, f.len()]) {
            let mut r = FrameReader::default();
            r.buf.extend_from_slice(&f[..split]);
            let mut got = drain(&mut r);
            r.buf.extend_from_slice(&f[split..]);
            got.extend(drain(&mut r));
            assert_eq!(got.len(), 1, "split {split}");
            assert_eq!(payload_of(&got[0]), payload);
            assert_eq!(&got[0].1[..], &f[..]);
        }
    }

    #[test]
    fn oversized_or_malformed_frames_are_refused_at_the_header() {
        let ins = Inbound::new(inspector());
        let big = MAX_MESSAGE_BYTES as usize + 1;
        let mut head = vec![0x82, 0x80 | 127];
        head.extend_from_slice(&(big as u64).to_be_bytes());
        head.extend_from_slice(&KEY);
        assert_eq!(ins.admit(&parse_header(&head).unwrap()), Err(Stop::TooBig));
        let mut huge = head.clone();
        huge[2] = 0x80; // 2^63: must not overflow
        assert_eq!(ins.admit(&parse_header(&huge).unwrap()), Err(Stop::TooBig));
        let mut flood = Inbound::new(inspector());
        push(&mut flood, &encode(false, OP_TEXT, b"a", Some(KEY))).unwrap();
        let empty = encode(false, OP_CONTINUATION, b"", Some(KEY));
        for _ in 1..MAX_HELD_FRAMES {
            assert_eq!(push(&mut flood, &empty), Ok(vec![]));
        }
        assert_eq!(push(&mut flood, &empty), Err(Stop::TooBig));
        let refused = |f: Vec<u8>| {
            matches!(
                ins.admit(&parse_header(&f).unwrap()),
                Err(Stop::Protocol(_))
            )
        };
        assert!(refused(encode(true, OP_TEXT, b"x", None)), "unmasked");
        let mut rsv1 = encode(true, OP_TEXT, b"x", Some(KEY));
        rsv1[0] |= 0x40;
        assert!(refused(rsv1), "permessage-deflate bit");
        assert!(
            refused(encode(false, OP_PING, b"x", Some(KEY))),
            "fragmented ping"
        );
        assert!(
            refused(encode(true, OP_PING, &[0; 126], Some(KEY))),
            "long ping"
        );
        assert!(
            refused(encode(true, 0x3, b"x", Some(KEY))),
            "reserved opcode"
        );
    }

    fn push(ins: &mut Inbound, frame: &[u8]) -> Result<Vec<Bytes>, Stop> {
        let h = parse_header(frame).unwrap();
        ins.admit(&h)?;
        ins.frame((h, Bytes::copy_from_slice(frame)))
    }

    #[test]
    fn a_secret_split_across_continuation_frames_is_caught_at_every_offset() {
        let ins = inspector();
        let s = secret();
        for k in 1..s.len() {
            let mut inbound = Inbound::new(Arc::clone(&ins));
            let first = encode(
                false,
                OP_TEXT,
                format!("token: {}", &s[..k]).as_bytes(),
                Some(KEY),
            );
            let second = encode(
                true,
                OP_CONTINUATION,
                format!("{} end", &s[k..]).as_bytes(),
                Some(KEY),
            );
            assert_eq!(push(&mut inbound, &first), Ok(vec![]), "held at {k}");
            match push(&mut inbound, &second) {
                Err(Stop::Finding(f)) => assert_eq!(f.rule_id, "anthropic-api-key"),
                other => panic!("split at {k}: {other:?}"),
            }
            assert!(inbound.verdict.is_blocked());
        }
    }

    #[test]
    fn clean_fragments_are_released_in_order_and_large_messages_stream() {
        let mut inbound = Inbound::new(inspector());
        let frames = [
            encode(false, OP_TEXT, b"one ", Some(KEY)),
            encode(false, OP_CONTINUATION, b"two ", Some(KEY)),
            encode(true, OP_PING, b"are you there", Some(KEY)),
            encode(true, OP_CONTINUATION, b"three", Some(KEY)),
        ];
        assert_eq!(push(&mut inbound, &frames[0]), Ok(vec![]));
        assert_eq!(push(&mut inbound, &frames[1]), Ok(vec![]));
        // A control frame passes at once, even mid-message.
        assert_eq!(push(&mut inbound, &frames[2]).unwrap().concat(), frames[2]);
        let released = push(&mut inbound, &frames[3]).unwrap().concat();
        assert_eq!(released, [&frames[0][..], &frames[1], &frames[3]].concat());

        // 4 MiB in 64 KiB frames: frames leave before the message ends.
        let chunk: Vec<u8> = b"lorem ipsum dolor sit amet "
            .iter()
            .copied()
            .cycle()
            .take(64 << 10)
            .collect();
        let mut early = 0;
        let mut all = Vec::new();
        let mut sent = Vec::new();
        for i in 0..64 {
            let op = if i == 0 { OP_BINARY } else { OP_CONTINUATION };
            let f = encode(i == 63, op, &chunk, Some(KEY));
            let out = push(&mut inbound, &f).unwrap();
            if i < 63 {
                early += out.len();
            }
            all.extend(out.concat());
            sent.extend(f);
        }
        assert!(early > 40, "only {early} frames released before the end");
        assert_eq!(all, sent);
    }

    #[test]
    fn protocol_order_and_control_payloads_are_checked() {
        let mut inbound = Inbound::new(inspector());
        let cont = encode(true, OP_CONTINUATION, b"x", Some(KEY));
        assert!(matches!(push(&mut inbound, &cont), Err(Stop::Protocol(_))));
        let mut inbound = Inbound::new(inspector());
        push(&mut inbound, &encode(false, OP_TEXT, b"a", Some(KEY))).unwrap();
        let again = encode(true, OP_TEXT, b"b", Some(KEY));
        assert!(matches!(push(&mut inbound, &again), Err(Stop::Protocol(_))));
        let mut inbound = Inbound::new(inspector());
        let ping = encode(true, OP_PING, secret().as_bytes(), Some(KEY));
        assert!(matches!(push(&mut inbound, &ping), Err(Stop::Finding(_))));
    }

    #[test]
    fn server_frame_boundaries_are_found_at_every_split_offset() {
        let frames = [
            encode(true, OP_TEXT, b"abc", None),
            encode(true, OP_BINARY, &[1u8; 200], None),
            encode(true, OP_PING, b"", None),
            encode(true, OP_BINARY, &[2u8; 70_000], None),
        ];
        let stream = frames.concat();
        let mut ends = vec![0];
        for f in &frames {
            ends.push(ends.last().unwrap() + f.len());
        }
        for split in (0..300).chain([stream.len() - 1, stream.len()]) {
            let mut b = Boundary::default();
            assert_eq!(b.advance(&stream[..split], false), split);
            let next = *ends.iter().find(|&&e| e >= split).unwrap();
            assert_eq!(
                split + b.advance(&stream[split..], true),
                next,
                "split {split}"
            );
            assert!(b.at_boundary());
        }
    }

    #[test]
    fn close_frames_carry_the_code_and_are_masked_towards_the_server() {
        let f = close_frame(1008, "egress-proxy: DLP rule x", Some(KEY));
        let h = parse_header(&f).unwrap();
        assert_eq!((h.opcode, h.fin, h.mask), (OP_CLOSE, true, Some(KEY)));
        let p = payload_of(&(h, Bytes::from(f)));
        assert_eq!(&p[..2], &1008u16.to_be_bytes());
        assert_eq!(&p[2..], b"egress-proxy: DLP rule x");
        assert!(close_frame(1002, &"x".repeat(500), None).len() <= 127);
    }

    /// tungstenite as the client produces frames our reader parses and unmasks correctly.
    #[tokio::test]
    async fn real_client_frames_parse_and_unmask() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut ws = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect();
        ws.send(Message::Text("hello".into())).await.unwrap();
        ws.send(Message::Binary(big.clone())).await.unwrap();
        ws.send(Message::Frame(Frame::message(
            b"frag".to_vec(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .unwrap();
        ws.send(Message::Frame(Frame::message(
            b"ment".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .unwrap();
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        while got.len() < 4 {
            r.fill(&mut b).await.unwrap();
            got.extend(drain(&mut r));
        }
        assert!(got.iter().all(|(h, _)| h.mask.is_some()));
        let payloads: Vec<Vec<u8>> = got.iter().map(payload_of).collect();
        assert_eq!(
            payloads,
            vec![b"hello".to_vec(), big, b"frag".to_vec(), b"ment".to_vec()]
        );
        assert_eq!(got[2].0.opcode, OP_TEXT);
        assert_eq!(got[3].0.opcode, OP_CONTINUATION);
    }

    /// The whole relay between a tungstenite client and a tungstenite echo server.
    #[tokio::test]
    async fn relay_echoes_clean_messages_and_closes_1008_on_a_secret() {
        let (client_end, relay_client) = tokio::io::duplex(1 << 16);
        let (relay_upstream, server_end) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(relay_inspected(relay_client, relay_upstream, inspector()));
        let server = tokio::spawn(async move {
            let mut ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
            let mut seen = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = &msg {
                    seen.push(t.clone());
                    let _ = ws.send(msg).await;
                }
            }
            seen
        });
        let mut ws = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
        ws.send(Message::Text("clean".into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("clean".into())
        );
        let s = secret();
        ws.send(Message::Text(format!("{{\"key\":\"{s}\"}}")))
            .await
            .unwrap();
        let close = ws.next().await.unwrap().unwrap();
        let Message::Close(Some(CloseFrame { code, reason })) = close else {
            panic!("expected a close frame, got {close:?}");
        };
        assert_eq!(u16::from(code), 1008);
        assert!(reason.contains("anthropic-api-key") && !reason.contains(&s[..20]));
        let r = relay.await.unwrap();
        assert!(matches!(r.stop, Stop::Finding(_)), "{:?}", r.stop);
        assert!(r.verdict.is_blocked());
        let seen = server.await.unwrap();
        assert_eq!(seen, vec!["clean".to_owned()]);
    }
}
