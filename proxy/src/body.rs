//! Body wrappers that observe bytes as they stream through, without buffering: a byte counter
//! for the audit and metrics, and a finalizer that runs however the body ends (completion,
//! error or the peer going away), which is when a request's audit line can be written.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::forward::{BoxError, ProxyBody};

type Finalizer = Box<dyn FnOnce(u64) + Send>;

pin_project_lite::pin_project! {
    /// Counts data bytes into a shared counter; runs the finalizer with the total on drop.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        counter: Arc<AtomicU64>,
        finalizer: Option<Finalizer>,
    }

    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(f) = this.finalizer.take() {
                f(this.counter.load(Ordering::Relaxed));
            }
        }
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, counter: Arc<AtomicU64>) -> Self {
        Counted {
            inner,
            counter,
            finalizer: None,
        }
    }

    pub fn on_drop(mut self, f: impl FnOnce(u64) + Send + 'static) -> Self {
        self.finalizer = Some(Box::new(f));
        self
    }
}

impl<B> Body for Counted<B>
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
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The sender of a body (the client's request, the upstream's response) went quiet for longer
/// than the idle bound.
#[derive(Debug, thiserror::Error)]
#[error("body stalled for more than {0:?}")]
pub struct BodyStalled(std::time::Duration);

pin_project_lite::pin_project! {
    /// Cuts a body whose sender goes quiet: the deadline runs only while the proxy is asking for
    /// the next frame, so backpressure from the receiving side never counts against the sender.
    pub struct Idle<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: tokio::time::Sleep,
        limit: std::time::Duration,
        waiting: bool,
    }
}

impl<B> Idle<B> {
    pub fn new(inner: B, limit: std::time::Duration) -> Self {
        Idle {
            inner,
            deadline: tokio::time::sleep(limit),
            limit,
            waiting: false,
        }
    }
}

impl<B> Body for Idle<B>
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
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                // The idle period starts when the proxy first finds nothing to take; a frame
                // that is ready at once costs no clock read and no timer-wheel update (a
                // keep-alive response is usually two such frames).
                if !*this.waiting {
                    *this.waiting = true;
                    let next = tokio::time::Instant::now() + *this.limit;
                    this.deadline.as_mut().reset(next);
                }
                match this.deadline.poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(*this.limit))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A short complete body, for proxy-generated answers (denials, errors).
pub fn text(s: impl Into<String>) -> ProxyBody {
    http_body_util::Full::new(Bytes::from(s.into()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any streaming body into the proxy's body type.
pub fn boxed<B>(b: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// A plain-text response, as every proxy-generated answer is.
pub fn response(
    status: http::StatusCode,
    text_body: impl Into<String>,
) -> http::Response<ProxyBody> {
    let mut resp = http::Response::new(text(text_body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A bodiless response (CONNECT's 200).
pub fn empty_response(status: http::StatusCode) -> http::Response<ProxyBody> {
    let mut resp = http::Response::new(empty());
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A body that yields `frames` ready frames, then never another.
    struct Scripted {
        frames: usize,
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.frames == 0 {
                return Poll::Pending;
            }
            self.frames -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_but_backpressure_does_not_count() {
        let limit = Duration::from_secs(60);
        let mut body = std::pin::pin!(Idle::new(Scripted { frames: 2 }, limit));
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        // The consumer (upstream backpressure) waits far longer than the limit between frames.
        tokio::time::advance(limit * 3).await;
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        // Now the client goes quiet while we wait: cut after the limit.
        let started = tokio::time::Instant::now();
        let cut = body.frame().await;
        assert!(cut.is_some_and(|f| f.is_err()));
        assert!(started.elapsed() >= limit);
    }
}
