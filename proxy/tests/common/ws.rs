//! A WebSocket client through a bumped tunnel: CONNECT, TLS to the proxy's leaf, then the
//! upgrade (tokio-tungstenite), for the WebSocket DLP and lifecycle tests.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Bench, HOST};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// CONNECT, TLS to the proxy's leaf, then a WebSocket handshake that offers permessage-deflate.
pub async fn ws_connect(b: &Bench) -> Ws {
    let port = b.upstream.port();
    let mut tcp = tokio::net::TcpStream::connect(b.proxy.listen_addr())
        .await
        .unwrap();
    let connect = format!("CONNECT {HOST}:{port} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n");
    tcp.write_all(connect.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    let tls = tokio_rustls::TlsConnector::from(super::h1_tls_client(&b.ca()))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut req = format!("wss://{HOST}:{port}/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}
