//! A response body checked for the credentials the proxy added to its request (see
//! `inspect::reflect`): forwarded as it arrives, less a tail that could begin a token, and cut
//! (HTTP/2 stream reset, HTTP/1 connection closed) the moment a token shows. The exchange's
//! audit line then says deny.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use super::outcome::Outcome;
use crate::forward::BoxError;
use crate::inspect::reflect::Reflection;

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
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity") && !v.is_empty());
    (coded && !resp.body().is_end_stream()).then(|| {
        "the upstream compressed its response although asked for identity; a response to a \
         request carrying the bottle's credential is checked for that credential, and a \
         compressed one cannot be"
            .to_owned()
    })
}

pin_project_lite::pin_project! {
    /// `held`: bytes that could begin a token, waiting for the next piece; `trailers`: ones
    /// that arrived while bytes were held, sent after them.
    pub struct Unreflected<B> {
        #[pin]
        inner: B,
        reflection: Arc<Reflection>,
        outcome: Arc<Outcome>,
        held: BytesMut,
        trailers: Option<Frame<Bytes>>,
        done: bool,
    }
}

impl<B> Unreflected<B> {
    pub fn new(inner: B, reflection: Arc<Reflection>, outcome: Arc<Outcome>) -> Self {
        Unreflected {
            inner,
            reflection,
            outcome,
            held: BytesMut::new(),
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
                    if this.held.is_empty() {
                        return Poll::Ready(None);
                    }
                    // What was held began a token but never completed one.
                    return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Some(id) = frame
                        .trailers_ref()
                        .and_then(|t| in_headers(this.reflection, t))
                    {
                        return cut(this.outcome, id, this.done);
                    }
                    if this.held.is_empty() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    *this.trailers = Some(frame);
                    return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                }
            };
            let buf = if this.held.is_empty() {
                data
            } else {
                this.held.extend_from_slice(&data);
                this.held.split().freeze()
            };
            if let Some(id) = this.reflection.find(&buf) {
                return cut(this.outcome, id, this.done);
            }
            let keep = this.reflection.pending(&buf);
            let send = buf.len() - keep;
            this.held.extend_from_slice(&buf[send..]);
            if send > 0 {
                return Poll::Ready(Some(Ok(Frame::data(buf.slice(..send)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
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
