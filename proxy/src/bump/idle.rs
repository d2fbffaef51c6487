//! The idle bound of a bumped HTTP/2 connection. HTTP/1 has one for free (`HEADER_READ_TIMEOUT`
//! runs while a keep-alive connection waits for its next request), but an HTTP/2 client that
//! answers our pings and never opens a stream would hold its connection slot, TLS session and
//! tunnel for ever: pings prove the peer is alive, not that it is using the connection. So the
//! streams in flight are counted, and once there has been none for `H2_IDLE_TIMEOUT` the
//! connection is asked to close (GOAWAY, which never cuts a stream the client has opened).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::watch;

use crate::forward::{BoxError, ProxyBody};

/// Counts one connection's streams in flight: a request from the moment the service sees it
/// until its response body has ended or been dropped.
#[derive(Debug, Clone)]
pub struct Streams {
    open: watch::Sender<usize>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            open: watch::Sender::new(0),
        }
    }
}

impl Streams {
    /// Counts a stream until the returned guard is dropped.
    pub fn open(&self) -> StreamGuard {
        self.open.send_modify(|n| *n += 1);
        StreamGuard {
            open: self.open.clone(),
        }
    }

    /// Completes once the connection has had no stream in flight for `limit` without a break.
    pub async fn idle_for(&self, limit: Duration) {
        let mut open = self.open.subscribe();
        loop {
            // Only fails if the sender is gone, which `self` prevents.
            if open.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            // Any change restarts the wait: a stream opened (and maybe already closed) is use.
            if tokio::time::timeout(limit, open.changed()).await.is_err() {
                return;
            }
        }
    }
}

/// One stream's count, given back on drop.
#[derive(Debug)]
pub struct StreamGuard {
    open: watch::Sender<usize>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl StreamGuard {
    /// Keeps the stream counted until `body` ends or is dropped (a response streams long after
    /// the service has returned it).
    pub fn hold_until_end_of(self, body: ProxyBody) -> ProxyBody {
        http_body_util::BodyExt::boxed_unsync(Held {
            inner: body,
            guard: Some(self),
        })
    }
}

struct Held {
    inner: ProxyBody,
    guard: Option<StreamGuard>,
}

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const LIMIT: Duration = Duration::from_secs(90);

    /// Whether `idle_for` has completed by `at` from now (paused clock).
    async fn idle_by(streams: &Streams, at: Duration) -> bool {
        tokio::time::timeout(at, streams.idle_for(LIMIT))
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_streams_is_idle_after_the_limit_and_not_before() {
        let streams = Streams::default();
        assert!(!idle_by(&streams, LIMIT - Duration::from_secs(1)).await);
        assert!(idle_by(&streams, LIMIT + Duration::from_millis(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_stream_keeps_the_connection_however_long_it_lasts() {
        let streams = Streams::default();
        let guard = streams.open();
        assert!(!idle_by(&streams, 10 * LIMIT).await);
        drop(guard);
        assert!(idle_by(&streams, LIMIT + Duration::from_millis(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_comes_and_goes_restarts_the_clock() {
        let streams = Streams::default();
        let watcher = {
            let streams = streams.clone();
            tokio::spawn(async move { streams.idle_for(LIMIT).await })
        };
        tokio::time::sleep(LIMIT - Duration::from_secs(10)).await;
        drop(streams.open());
        tokio::time::sleep(LIMIT - Duration::from_secs(10)).await;
        assert!(!watcher.is_finished(), "the short stream must count as use");
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(watcher.is_finished());
    }

    #[tokio::test]
    async fn the_count_is_held_until_the_response_body_ends() {
        let streams = Streams::default();
        let mut body = streams
            .open()
            .hold_until_end_of(crate::body::text("a response"));
        assert_eq!(*streams.open.borrow(), 1);
        let first = body.frame().await.and_then(Result::ok);
        assert!(first.is_some_and(|f| f.is_data()));
        assert_eq!(*streams.open.borrow(), 1, "a body still streaming counts");
        assert!(body.frame().await.is_none());
        assert_eq!(*streams.open.borrow(), 0, "an ended body no longer counts");
        drop(body);
        assert_eq!(*streams.open.borrow(), 0);

        let dropped = streams.open().hold_until_end_of(crate::body::empty());
        assert_eq!(*streams.open.borrow(), 1);
        drop(dropped);
        assert_eq!(*streams.open.borrow(), 0);
    }
}
