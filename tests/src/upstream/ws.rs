//! WebSocket echo over an HTTP/1.1 Upgrade. Every message the client sends is
//! appended to the raw log, so a test can prove a secret inside a WebSocket
//! message never reached the upstream.

use futures_util::{SinkExt, StreamExt};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::record::{recorded_from_parts, Log};
use super::routes::full;
use super::RespBody;

/// A WebSocket session is closed after this long without a message.
const WS_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub fn upgrade(parts: Parts, on_upgrade: OnUpgrade, log: &Log) -> Response<RespBody> {
    let rec = recorded_from_parts(&parts);
    log.finish(rec);
    let is_ws = parts
        .headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = parts.headers.get(http::header::SEC_WEBSOCKET_KEY) else {
        return full(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "expected a WebSocket upgrade\n",
        );
    };
    if !is_ws {
        return full(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "expected a WebSocket upgrade\n",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let log = log.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        echo_loop(ws, &log).await;
    });
    let mut resp = full(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    resp.headers_mut().remove(http::header::CONTENT_TYPE);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

async fn echo_loop<S>(mut ws: WebSocketStream<S>, log: &Log)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = match tokio::time::timeout(WS_IDLE_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(msg))) => msg,
            _ => return,
        };
        let reply = match msg {
            Message::Text(text) => {
                log.raw(text.as_bytes());
                Message::Text(text)
            }
            Message::Binary(data) => {
                log.raw(&data);
                Message::Binary(data)
            }
            Message::Close(_) => {
                let _ = ws.close(None).await;
                return;
            }
            // Pings are answered by tungstenite itself on the next flush.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}
