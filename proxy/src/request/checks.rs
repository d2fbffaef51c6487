//! What the request's head and its body's verdict say about refusing the exchange: framing
//! that smuggling is built on, how the body is to be decoded, and a body DLP cut.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::inspect::body::SharedVerdict;
use crate::inspect::{self, Verdict};
use crate::policy::Target;
use dlp_rules::BodyContext;

pub(super) enum BodyRefusal {
    Finding(Verdict, String),
    Unscannable(String),
}

/// A body cut by DLP (finding or unscannable) turns the exchange into a 403, whatever the
/// upstream said: the upstream saw only cleared bytes.
pub(super) fn body_refusal(
    shared: &SharedVerdict,
    target: &Target,
    method: &str,
) -> Option<BodyRefusal> {
    // A verdict that cannot be read (a scanner thread panicked holding it) is no clearance.
    let Ok(state) = shared.lock() else {
        return Some(BodyRefusal::Unscannable(
            "request body verdict unavailable".into(),
        ));
    };
    if let Some(f) = &state.verdict.blocking {
        let body = inspect::denial_body(method, target, f);
        return Some(BodyRefusal::Finding(state.verdict.clone(), body));
    }
    state
        .unscannable
        .as_ref()
        .map(|why| BodyRefusal::Unscannable(format!("request body could not be scanned: {why}")))
}

/// How the body is to be decoded, from every `Content-Encoding` line (an upstream merges
/// repeated lines into one list, so the scanner must decode all of them: reading only the first
/// let `identity` then `gzip` pass gzip bytes as text). A value that is not visible ASCII is
/// refused: it cannot be decoded as the upstream would.
pub(super) fn body_context(headers: &HeaderMap) -> Result<BodyContext, String> {
    let mut ctx = BodyContext::body();
    let mut codings = Vec::new();
    for v in headers.get_all(http::header::CONTENT_ENCODING) {
        let v = v
            .to_str()
            .map_err(|_| "Content-Encoding is not readable text".to_owned())?;
        codings.push(v);
    }
    if !codings.is_empty() {
        ctx = ctx.with_content_encoding(codings.join(", "));
    }
    if let Some(ct) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        ctx = ctx.with_content_type(ct);
    }
    Ok(ctx)
}

/// Rejects the framing ambiguities request smuggling is built on (RFC 9112 §6.3).
pub(super) fn smuggling(headers: &HeaderMap) -> Option<&'static str> {
    let cl = headers.get_all(CONTENT_LENGTH).iter().count();
    let te = headers.contains_key(TRANSFER_ENCODING);
    if cl > 0 && te {
        return Some("both Content-Length and Transfer-Encoding present");
    }
    if cl > 1 {
        return Some("duplicate Content-Length");
    }
    None
}
