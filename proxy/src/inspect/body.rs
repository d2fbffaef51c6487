//! The per-chunk body filter: every chunk goes through the DLP scanner first, and only the
//! prefix the scanner has cleared is forwarded. The not-yet-cleared tail is held back, so no
//! byte of a secret reaches the upstream; on a blocking finding the body errors, which aborts
//! the upstream request (the handler then answers 403 from the shared verdict).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use dlp_rules::BodyScanner;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::{Inspector, Verdict};
use crate::forward::BoxError;
use crate::limits::MAX_HELD_BODY_BYTES;

/// Why the body stream was cut.
#[derive(Debug, thiserror::Error)]
pub enum BodyBlocked {
    #[error("DLP finding in request body")]
    Finding,
    #[error("request body could not be scanned: {0}")]
    Unscannable(String),
}

/// Findings and the cut reason, read by the handler after the exchange.
#[derive(Debug, Default)]
pub struct BodyVerdict {
    pub verdict: Verdict,
    pub unscannable: Option<String>,
}

pub type SharedVerdict = Arc<Mutex<BodyVerdict>>;

pin_project_lite::pin_project! {
    pub struct ScanBody<B> {
        #[pin]
        inner: B,
        scanner: BodyScanner,
        inspector: Arc<Inspector>,
        held: BytesMut,
        released: u64,
        received: u64,
        compressed: bool,
        warned: bool,
        finished: bool,
        trailers: Option<HeaderMap>,
        shared: SharedVerdict,
    }
}

impl<B> ScanBody<B> {
    /// `compressed`: the body has a `Content-Encoding` (scanner offsets are then in decoded
    /// bytes, so only the scanner's own `releasable` can be trusted).
    pub fn new(
        inner: B,
        scanner: BodyScanner,
        inspector: Arc<Inspector>,
        shared: SharedVerdict,
        compressed: bool,
    ) -> Self {
        ScanBody {
            inner,
            scanner,
            inspector,
            held: BytesMut::new(),
            released: 0,
            received: 0,
            compressed,
            warned: false,
            finished: false,
            trailers: None,
            shared,
        }
    }
}

/// Records the verdict; returns the error to cut the stream with, if it must be cut.
fn record(shared: &SharedVerdict, verdict: Verdict, warned: &mut bool) -> Option<BodyBlocked> {
    let blocked = verdict.is_blocked();
    *warned |= !verdict.findings.is_empty();
    if let Ok(mut s) = shared.lock() {
        s.verdict.merge(verdict);
    }
    blocked.then_some(BodyBlocked::Finding)
}

fn unscannable(shared: &SharedVerdict, why: String) -> BoxError {
    if let Ok(mut s) = shared.lock() {
        s.unscannable = Some(why.clone());
    }
    Box::new(BodyBlocked::Unscannable(why))
}

impl<B> Body for ScanBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if *this.finished {
                if !this.held.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(None) => {
                    let progress = match this.scanner.finish() {
                        Ok(p) => p,
                        Err(e) => {
                            return Poll::Ready(Some(Err(unscannable(this.shared, e.to_string()))))
                        }
                    };
                    if let Some(cut) = record(
                        this.shared,
                        this.inspector.judge(progress.findings),
                        this.warned,
                    ) {
                        return Poll::Ready(Some(Err(Box::new(cut))));
                    }
                    *this.finished = true;
                    continue;
                }
            };
            let data = match frame.into_data() {
                Ok(d) => d,
                Err(frame) => {
                    // Trailers are header fields too: scanned, then held until the body is
                    // cleared.
                    if let Ok(t) = frame.into_trailers() {
                        let verdict = this.inspector.trailers(&t);
                        if let Some(cut) = record(this.shared, verdict, this.warned) {
                            return Poll::Ready(Some(Err(Box::new(cut))));
                        }
                        *this.trailers = Some(t);
                    }
                    continue;
                }
            };
            let progress = match this.scanner.feed(&data) {
                Ok(p) => p,
                Err(e) => return Poll::Ready(Some(Err(unscannable(this.shared, e.to_string())))),
            };
            if let Some(cut) = record(
                this.shared,
                this.inspector.judge(progress.findings),
                this.warned,
            ) {
                return Poll::Ready(Some(Err(Box::new(cut))));
            }
            this.held.extend_from_slice(&data);
            *this.received += data.len() as u64;
            let mut releasable = progress.releasable;
            if *this.warned && !*this.compressed {
                // The scanner stops advancing `releasable` at its first finding. After a
                // warn-mode finding the body must keep flowing, while a later *blocking* finding
                // must still not leak: any future finding lies within the scanner's window, so
                // everything older than one window is safe.
                let window = this.scanner.buffer_bound() as u64;
                releasable = releasable.max(this.received.saturating_sub(window));
            }
            let clear = releasable.saturating_sub(*this.released);
            let clear = usize::try_from(clear)
                .unwrap_or(usize::MAX)
                .min(this.held.len());
            if clear > 0 {
                *this.released += clear as u64;
                return Poll::Ready(Some(Ok(Frame::data(this.held.split_to(clear).freeze()))));
            }
            if this.held.len() > MAX_HELD_BODY_BYTES {
                let why = format!("more than {MAX_HELD_BODY_BYTES} bytes could not be cleared");
                return Poll::Ready(Some(Err(unscannable(this.shared, why))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.held.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Same bytes, only delayed: the length is unchanged.
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Secrets};
    use http_body_util::{BodyExt, StreamBody};

    /// A GitHub-token-shaped value (synthetic; the checksum is not needed for the shape rule).
    const TOKEN: &str = "ghp_R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa0QoI";

    fn scan(trailer_value: &str) -> (Result<Vec<Frame<Bytes>>, BoxError>, SharedVerdict) {
        let cfg = Config::embedded_default().unwrap();
        let inspector = Arc::new(Inspector::new(&cfg, &Secrets::default()).unwrap());
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", trailer_value.parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"clean body text"))),
            Ok(Frame::trailers(trailers)),
        ];
        let inner = StreamBody::new(futures_util::stream::iter(frames));
        let scanner = inspector
            .engine()
            .body_scanner(dlp_rules::BodyContext::body())
            .unwrap();
        let shared = SharedVerdict::default();
        let body = ScanBody::new(inner, scanner, inspector, Arc::clone(&shared), false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out = rt.block_on(async move {
            let mut body = std::pin::pin!(body);
            let mut frames = Vec::new();
            while let Some(f) = body.frame().await {
                frames.push(f?);
            }
            Ok(frames)
        });
        (out, shared)
    }

    #[test]
    fn a_secret_in_a_trailer_cuts_the_body() {
        let (out, shared) = scan(TOKEN);
        assert!(out.is_err(), "trailers with a token were released");
        let state = shared.lock().unwrap();
        let f = state.verdict.blocking.as_ref().unwrap();
        assert_eq!(f.rule_id, "github-pat");
    }

    #[test]
    fn clean_trailers_follow_the_body() {
        let (out, shared) = scan("sha256-ok");
        let frames = out.unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[1].is_trailers());
        assert!(shared.lock().unwrap().verdict.blocking.is_none());
    }
}
