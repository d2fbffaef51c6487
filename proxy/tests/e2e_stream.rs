//! Streaming: WebSocket through a bumped tunnel, and a 1 GiB upload with bounded proxy memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Bench, HOST};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn websocket_echo_through_a_bumped_tunnel() {
    let b = Bench::start();
    let port = b.upstream.port();
    let proxy = b.proxy.listen_addr();
    let config = common::h1_tls_client(&b.ca());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
        tcp.write_all(
            format!("CONNECT {HOST}:{port} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        let url = format!("wss://{HOST}:{port}/ws");
        let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
        assert_eq!(resp.status(), 101);
        for i in 0..3 {
            ws.send(Message::Text(format!("hello {i}"))).await.unwrap();
            let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(echoed, Message::Text(format!("hello {i}")));
        }
        ws.close(None).await.unwrap();
    });
}

/// A 1 GiB upload streams through: the upstream counts every byte and the proxy's peak RSS
/// stays far below the body size (memory does not grow with the body).
#[test]
fn one_gib_upload_streams_with_bounded_proxy_memory() {
    const SIZE: u64 = 1 << 30;
    let b = Bench::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    // Non-zero, incompressible-looking content (not a sparse zero file) so nothing can
    // shortcut the data; written in 1 MiB blocks.
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut block = vec![0u8; 1 << 20];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        for i in 0..(SIZE >> 20) {
            block[0] = i as u8;
            f.write_all(&block).unwrap();
        }
    }
    let rss_before = b.proxy.rss_kib().unwrap();
    let out = b
        .curl("/upload")
        .http1()
        .method("POST")
        .header("Content-Type", "application/octet-stream")
        .upload_file(&file)
        .max_time(Duration::from_secs(600))
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.json().unwrap()["bytes"], SIZE);
    let peak = b.proxy.peak_rss_kib().unwrap();
    println!("proxy RSS before {rss_before} KiB, peak {peak} KiB after a 1 GiB upload");
    assert!(
        peak < 200 * 1024,
        "proxy peak RSS {peak} KiB (before: {rss_before} KiB) for a 1 GiB upload"
    );
    let event = b
        .audit("allow")
        .into_iter()
        .find(|e| e["path"] == "/upload")
        .unwrap();
    assert_eq!(event["bytes_up"], SIZE);
}
