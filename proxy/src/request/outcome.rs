//! The end of an exchange whose request body may still be scanned while the response streams
//! back: an upstream may answer before it has read the whole body (full duplex, early errors).
//! A DLP block that comes after the response head cannot be a 403 any more, so the response is
//! cut (`CutOnBlock`: HTTP/2 resets the stream, HTTP/1 closes the connection mid-body) and the
//! audit line says deny. The line is written once both bodies are done: each holds an
//! `Arc<Outcome>`, and the last one dropped writes it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::audit::{Decision, Event};
use crate::forward::BoxError;
use crate::inspect::body::SharedVerdict;
use crate::state::Proxy;

pub struct Outcome {
    /// Set once the response head is accepted; exchanges refused before that are audited by
    /// their refusal, and an unarmed outcome writes nothing.
    event: Mutex<Option<Event>>,
    shared: SharedVerdict,
    up: Arc<AtomicU64>,
    down: AtomicU64,
    /// The id of a credential the response carried back (`Unreflected` cut it).
    reflected: Mutex<Option<String>>,
    proxy: Arc<Proxy>,
}

impl Outcome {
    pub fn new(proxy: Arc<Proxy>, shared: SharedVerdict, up: Arc<AtomicU64>) -> Arc<Outcome> {
        Arc::new(Outcome {
            event: Mutex::new(None),
            shared,
            up,
            down: AtomicU64::new(0),
            reflected: Mutex::new(None),
            proxy,
        })
    }

    /// The response is on its way: the event is written when both bodies are done.
    pub fn arm(&self, event: Event) {
        if let Ok(mut slot) = self.event.lock() {
            *slot = Some(event);
        }
    }

    pub fn set_bytes_down(&self, n: u64) {
        self.down.store(n, Ordering::Relaxed);
    }

    /// The response carried the credential `id` back and was cut.
    pub fn reflected(&self, id: &str) {
        if let Ok(mut slot) = self.reflected.lock() {
            *slot = Some(id.to_owned());
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let Some(mut event) = self.event.get_mut().ok().and_then(Option::take) else {
            return;
        };
        let metrics = &self.proxy.metrics;
        if let Ok(state) = self.shared.lock() {
            // Warn-mode findings and any late block are known now: the body is done.
            event.findings.extend(state.verdict.audit_findings());
            let status = event.status;
            if let Some(f) = &state.verdict.blocking {
                // The response is cut if it is still streaming (`CutOnBlock`); the held
                // bytes never left either way.
                let why = format!(
                    "dlp: {} in {} (found after the response had started)",
                    f.rule_id, f.location
                );
                event.outcome(Decision::Deny, status, why);
            } else if let Some(why) = &state.unscannable {
                let why = format!(
                    "request body could not be scanned: {why} (after the response had started)"
                );
                event.outcome(Decision::Deny, status, why);
            }
        }
        let reflected = self.reflected.get_mut().ok().and_then(Option::take);
        if let Some(id) = reflected {
            let status = event.status;
            let why = format!(
                "the upstream's response held the credential {id} the proxy added; response cut"
            );
            event.outcome(Decision::Deny, status, why);
            metrics.decision("deny", "reflect");
        } else if event.decision == Decision::Deny {
            metrics.decision("deny", "dlp");
        } else {
            metrics.decision("allow", "request");
        }
        if !event.findings.is_empty() {
            metrics.dlp_findings(event.findings.len() as u64);
        }
        event.bytes_up = self.up.load(Ordering::Relaxed);
        event.bytes_down = self.down.load(Ordering::Relaxed);
        metrics.add_bytes(event.bytes_up, event.bytes_down);
        self.proxy.audit.emit(event);
    }
}

pin_project_lite::pin_project! {
    /// A response body that errors (so hyper resets the stream or closes the connection) as
    /// soon as the request body it answers is blocked, and ends only if it is not.
    pub struct CutOnBlock<B> {
        #[pin]
        inner: B,
        shared: SharedVerdict,
    }
}

impl<B> CutOnBlock<B> {
    pub fn new(inner: B, shared: SharedVerdict) -> Self {
        CutOnBlock { inner, shared }
    }
}

/// Why the client's response stopped short (the client sees a reset, not this text).
#[derive(Debug, thiserror::Error)]
#[error("request body refused by DLP after the response had started")]
pub struct Cut;

fn blocked(shared: &SharedVerdict) -> bool {
    shared.lock().map_or(true, |s| {
        s.verdict.blocking.is_some() || s.unscannable.is_some()
    })
}

impl<B> Body for CutOnBlock<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if polled.is_ready() && blocked(this.shared) {
            return Poll::Ready(Some(Err(Box::new(Cut))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // Never claim the end early: the last poll must still get to check for a block.
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
