//! A response body checked for the credentials the proxy added to its request (see
//! `inspect::reflect`): forwarded as it arrives, less a tail that could begin a token, and cut
//! (HTTP/2 stream reset, HTTP/1 connection closed) the moment a token shows. The exchange's
//! audit line then says deny.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::outcome::Outcome;
use crate::forward::BoxError;
use crate::inspect::reflect::{ReflectStream, Reflection};

/// Why the client's response stopped short (the client sees a reset, not this text).
#[derive(Debug, thiserror::Error)]
#[error("the upstream's response held a credential the proxy added")]
pub struct Reflected;

/// Whether any header value holds one of the proxy's tokens; returns its id.
pub fn in_headers<'r>(reflection: &'r Reflection, headers: &http::HeaderMap) -> Option<&'r str> {
    headers.values().find_map(|v| reflection.find(v.as_bytes()))
}

/// A credentialed request asks for an uncompressed response: a token echoed inside a gzip body
/// would not show in its bytes.
pub fn ask_identity(headers: &mut http::HeaderMap) {
    headers.insert(
        http::header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
}

/// Why the response head must not reach the agent: it holds a token, or its body is compressed
/// (some endpoints compress whatever they are asked, httpbin's `/gzip`) and so cannot be checked.
pub fn refuse_head<B>(reflection: &Reflection, resp: &http::Response<B>) -> Option<String>
where
    B: Body,
{
    if let Some(id) = in_headers(reflection, resp.headers()) {
        return Some(format!(
            "the upstream's response headers held the credential {id} the proxy added"
        ));
    }
    let coded = resp
        .headers()
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity") && !v.is_empty())
        // A transfer coding other than chunked (`gzip, chunked`): hyper removes the chunking,
        // the header is hop-by-hop and dropped, and the gzip bytes would reach the agent.
        || resp
            .headers()
            .get_all(http::header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked"));
    (coded && !resp.body().is_end_stream()).then(|| {
        "the upstream compressed its response although asked for identity; a response to a \
         request carrying the bottle's credential is checked for that credential, and a \
         compressed one cannot be"
            .to_owned()
    })
}

pin_project_lite::pin_project! {
    /// `trailers`: ones that arrived while bytes were held, sent after them.
    pub struct Unreflected<B> {
        #[pin]
        inner: B,
        check: ReflectStream,
        outcome: Arc<Outcome>,
        trailers: Option<Frame<Bytes>>,
        done: bool,
    }
}

impl<B> Unreflected<B> {
    pub fn new(inner: B, reflection: Arc<Reflection>, outcome: Arc<Outcome>) -> Self {
        Unreflected {
            inner,
            check: ReflectStream::new(reflection),
            outcome,
            trailers: None,
            done: false,
        }
    }
}

impl<B> Body for Unreflected<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(trailers)));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let frame = match ready!(this.inner.as_mut().poll_frame(cx)) {
                None => {
                    *this.done = true;
                    // What was held began a token but never completed one.
                    let rest = this.check.finish();
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Some(id) = frame.trailers_ref().and_then(|t| {
                        t.values()
                            .find_map(|v| this.check.reflection().find(v.as_bytes()))
                    }) {
                        return cut(this.outcome, id, this.done);
                    }
                    let rest = this.check.finish();
                    if rest.is_empty() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    *this.trailers = Some(frame);
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            };
            match this.check.push(&data) {
                Err(id) => return cut(this.outcome, &id, this.done),
                Ok(send) if !send.is_empty() => return Poll::Ready(Some(Ok(Frame::data(send)))),
                Ok(_) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none()
            && !self.check.holding()
            && (self.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // The bytes are the upstream's, only regrouped: the same total.
        self.inner.size_hint()
    }
}

fn cut(
    outcome: &Outcome,
    id: &str,
    done: &mut bool,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    outcome.reflected(id);
    *done = true;
    Poll::Ready(Some(Err(Box::new(Reflected))))
}
