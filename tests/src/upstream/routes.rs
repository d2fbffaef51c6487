//! Plain HTTP routes of the test upstream: echo, status, SSE, upload,
//! download. Bodies are streamed in both directions so the fixture itself
//! never hides a buffering bug in the proxy.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use super::record::{recorded_from_parts, Log, Recorded, RECORDED_BODY_CAP};
use super::RespBody;

/// Longest silence tolerated between two body frames.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `/echo` includes the body text only up to this size.
const ECHO_BODY_TEXT_CAP: usize = 1024 * 1024;
/// Size of one `/download` chunk.
const DOWNLOAD_CHUNK: usize = 64 * 1024;
static DOWNLOAD_BYTES: [u8; DOWNLOAD_CHUNK] = [b'x'; DOWNLOAD_CHUNK];

/// Reads a request body frame by frame, logging raw bytes as they arrive.
/// With `store` false the bytes are only counted (used by `/upload`).
pub async fn drain_body(mut body: Incoming, log: &Log, rec: &mut Recorded, store: bool) {
    loop {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    rec.body_len += data.len() as u64;
                    if store {
                        log.raw(data);
                        let room = RECORDED_BODY_CAP.saturating_sub(rec.body.len());
                        rec.body.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
            Ok(None) => return,
            Ok(Some(Err(_))) | Err(_) => {
                rec.body_complete = false;
                return;
            }
        }
    }
}

pub fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<RespBody> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<RespBody> {
    full(status, "application/json", value.to_string())
}

/// Query parameter lookup without pulling in a URL crate (test inputs are simple).
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

pub async fn echo(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    drain_body(body, log, &mut rec, true).await;
    let mut headers = serde_json::Map::new();
    for (name, value) in &rec.headers {
        let joined = match headers.get(name).and_then(|v| v.as_str()) {
            Some(prev) => format!("{prev}, {value}"),
            None => value.clone(),
        };
        headers.insert(name.clone(), serde_json::Value::String(joined));
    }
    let body_text = match std::str::from_utf8(&rec.body) {
        Ok(s) if rec.body.len() <= ECHO_BODY_TEXT_CAP => serde_json::Value::String(s.to_owned()),
        _ => serde_json::Value::Null,
    };
    let value = serde_json::json!({
        "method": rec.method,
        "uri": rec.uri,
        "path": rec.path,
        "path_and_query": rec.path_and_query,
        "host": rec.host,
        "query": parts.uri.query(),
        "version": rec.version,
        "headers": headers,
        "body_len": rec.body_len,
        "body": body_text,
        "body_complete": rec.body_complete,
    });
    log.finish(rec);
    json(StatusCode::OK, &value)
}

/// `/echo`, gzip-compressed whatever the request accepts (like httpbin's `/gzip`).
pub async fn gzip_echo(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    use std::io::Write;
    let plain = echo(parts, body, log).await;
    let bytes = http_body_util::BodyExt::collect(plain.into_body())
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let packed = gz
        .write_all(&bytes)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    let mut resp = full(StatusCode::OK, "application/json", packed);
    resp.headers_mut().insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static("gzip"),
    );
    resp
}

pub async fn status(parts: Parts, body: Incoming, log: &Log, code: &str) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    drain_body(body, log, &mut rec, true).await;
    log.finish(rec);
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        // 204 and 304 must not carry a body (h2 treats one as a protocol error).
        Some(code) if matches!(code.as_u16(), 204 | 304) => full(code, "text/plain", ""),
        Some(code) => full(code, "text/plain", format!("status {}\n", code.as_u16())),
        None => full(StatusCode::BAD_REQUEST, "text/plain", "bad status code\n"),
    }
}

pub async fn upload(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    drain_body(body, log, &mut rec, false).await;
    let value = serde_json::json!({ "bytes": rec.body_len, "complete": rec.body_complete });
    log.finish(rec);
    json(StatusCode::OK, &value)
}

/// `/sse?n=5&interval_ms=200`: the first event immediately, then one per interval.
pub async fn sse(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    drain_body(body, log, &mut rec, true).await;
    log.finish(rec);
    let query = parts.uri.query();
    let n: u64 = query_param(query, "n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let interval = Duration::from_millis(
        query_param(query, "interval_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
    let stream = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let frame = Frame::data(Bytes::from(format!("data: event-{i}\n\n")));
        Some((Ok::<_, std::io::Error>(frame), i + 1))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    resp
}

/// `/duplex`: answers at once, before reading the body, then streams one line per request-body
/// frame (`got N`) as the body arrives, and `end` (or `cut` if the body failed) when it ends: a
/// full-duplex exchange, where the response has started before the request body is through.
pub async fn duplex(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let log = log.clone();
    tokio::spawn(async move {
        let mut body = body;
        loop {
            match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        rec.body_len += data.len() as u64;
                        log.raw(data);
                        let room = RECORDED_BODY_CAP.saturating_sub(rec.body.len());
                        rec.body.extend_from_slice(&data[..data.len().min(room)]);
                        let _ = tx.send(Bytes::from(format!("got {}\n", data.len()))).await;
                    }
                }
                Ok(None) => {
                    let _ = tx.send(Bytes::from_static(b"end\n")).await;
                    break;
                }
                Ok(Some(Err(_))) | Err(_) => {
                    rec.body_complete = false;
                    let _ = tx.send(Bytes::from_static(b"cut\n")).await;
                    break;
                }
            }
        }
        log.finish(rec);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(Frame::data(line)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// `/download?bytes=N`: N bytes of `x`, streamed in 64 KiB chunks with a Content-Length.
pub async fn download(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    drain_body(body, log, &mut rec, true).await;
    log.finish(rec);
    let total: u64 = query_param(parts.uri.query(), "bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stream = futures_util::stream::unfold(total, |left| async move {
        if left == 0 {
            return None;
        }
        let take = usize::try_from(left)
            .unwrap_or(DOWNLOAD_CHUNK)
            .min(DOWNLOAD_CHUNK);
        let frame = Frame::data(Bytes::from_static(&DOWNLOAD_BYTES).slice(..take));
        Some((Ok::<_, std::io::Error>(frame), left - take as u64))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(total));
    resp
}

pub async fn not_found(parts: Parts, body: Incoming, log: &Log) -> Response<RespBody> {
    let mut rec = recorded_from_parts(&parts);
    drain_body(body, log, &mut rec, true).await;
    log.finish(rec);
    full(
        StatusCode::NOT_FOUND,
        "text/plain",
        "testkit upstream: no such route\n",
    )
}
