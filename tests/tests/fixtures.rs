//! The upstream fixture's routes against curl and Rust clients, without the proxy: if these fail, an
//! e2e failure through the proxy means nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use testkit::{http_raw, raw_connect, Curl, TestCa, Upstream, UpstreamOptions};

fn tls_upstream(ca: &TestCa, opts: impl FnOnce(UpstreamOptions) -> UpstreamOptions) -> Upstream {
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1", "upstream.test"])
        .unwrap();
    Upstream::start(opts(UpstreamOptions::tls(cert, key))).unwrap()
}

#[test]
fn curl_h1_and_h2_echo_are_recorded() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let h1 = Curl::new(up.url("localhost", "/echo?a=1&b=two"))
        .cacert(ca.ca_pem_path())
        .http1()
        .header("X-Test", "one")
        .run()
        .unwrap();
    assert_eq!(h1.status, 200, "{h1:?}");
    assert_eq!(h1.http_version, "1.1");
    let j = h1.json().unwrap();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/echo");
    assert_eq!(j["query"], "a=1&b=two");
    assert_eq!(j["headers"]["x-test"], "one");
    assert_eq!(h1.header("content-type"), Some("application/json"));

    let h2 = Curl::new(up.url("localhost", "/echo"))
        .cacert(ca.ca_pem_path())
        .http2()
        .method("PUT")
        .body(b"hello h2".to_vec())
        .run()
        .unwrap();
    assert_eq!(h2.status, 200, "{h2:?}");
    assert_eq!(h2.http_version, "2");
    let j = h2.json().unwrap();
    assert_eq!(j["version"], "HTTP/2.0");
    assert_eq!(j["body"], "hello h2");
    assert_eq!(j["body_len"], 8);

    let reqs = up.requests_to("/echo");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].version, "HTTP/1.1");
    assert_eq!(reqs[0].header("x-test"), Some("one"));
    assert_eq!(reqs[1].method, "PUT");
    assert_eq!(reqs[1].body, b"hello h2");
    assert!(up.received_bytes_contains(b"hello h2"));
    assert!(up.received_bytes_contains(b"x-test: one"));
    assert!(!up.received_bytes_contains(b"never-sent-needle"));
}

#[test]
fn h1_only_upstream_refuses_h2_alpn() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, UpstreamOptions::h1_only);
    let out = Curl::new(up.url("localhost", "/echo"))
        .cacert(ca.ca_pem_path())
        .http2()
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.http_version, "1.1");
}

#[test]
fn ip_san_and_wrong_ca() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let ok = Curl::new(up.url("127.0.0.1", "/status/204"))
        .cacert(ca.ca_pem_path())
        .run()
        .unwrap();
    assert_eq!(ok.status, 204, "{ok:?}");
    let other = TestCa::new().unwrap();
    let bad = Curl::new(up.url("127.0.0.1", "/echo"))
        .cacert(other.ca_pem_path())
        .run()
        .unwrap();
    assert_eq!(
        bad.exit_code, 60,
        "untrusted CA must fail verification: {bad:?}"
    );
    assert_eq!(bad.status, 0);
}

#[test]
fn plain_upstream_status_download_and_raw() {
    let up = Upstream::start(UpstreamOptions::plain()).unwrap();
    let teapot = Curl::new(up.url("127.0.0.1", "/status/418")).run().unwrap();
    assert_eq!(teapot.status, 418);
    let dl = Curl::new(up.url("127.0.0.1", "/download?bytes=3000000"))
        .run()
        .unwrap();
    assert_eq!(dl.body.len(), 3_000_000);
    assert_eq!(dl.header("content-length"), Some("3000000"));

    let raw = http_raw(
        up.addr,
        b"GET /status/201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    let resp = testkit::RawResponse::parse(&raw).unwrap();
    assert_eq!(resp.status, 201);

    // CONNECT to a plain origin is just an unknown route: exercises raw_connect's refusal path.
    let (resp, _stream) =
        raw_connect(up.addr, "example.invalid:443", Duration::from_secs(5)).unwrap();
    assert_eq!(resp.status, 404);
    assert!(resp.text().contains("no such route"), "{resp:?}");
}

#[test]
fn sse_events_arrive_spaced_in_time() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    for http2 in [false, true] {
        let mut curl =
            Curl::new(up.url("localhost", "/sse?n=4&interval_ms=300")).cacert(ca.ca_pem_path());
        curl = if http2 { curl.http2() } else { curl.http1() };
        let timed = curl.run_timed_lines().unwrap();
        let events: Vec<_> = timed
            .lines
            .iter()
            .filter(|(_, l)| l.starts_with("data: "))
            .collect();
        assert_eq!(events.len(), 4, "{timed:?}");
        assert_eq!(events[3].1, "data: event-3");
        let first = events[0].0;
        let last = events[3].0;
        assert!(
            last - first >= Duration::from_millis(850),
            "events not spaced: {timed:?}"
        );
        assert!(
            first < last - Duration::from_millis(600),
            "first event was held back: {timed:?}"
        );
    }
}

#[test]
fn upload_50_mib_is_counted_not_stored() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, vec![b'u'; 50 * 1024 * 1024]).unwrap();
    for http2 in [false, true] {
        let mut curl = Curl::new(up.url("localhost", "/upload"))
            .cacert(ca.ca_pem_path())
            .body_file(&file);
        curl = if http2 { curl.http2() } else { curl.http1() };
        let out = curl.run().unwrap();
        assert_eq!(out.status, 200, "{out:?}");
        assert_eq!(out.json().unwrap()["bytes"], 50 * 1024 * 1024);
    }
    let reqs = up.requests_to("/upload");
    assert_eq!(reqs[0].body_len, 50 * 1024 * 1024);
    assert!(reqs[0].body.is_empty());
    assert!(
        up.received_bytes().len() < 64 * 1024,
        "upload bodies must not be logged"
    );
}

#[tokio::test]
async fn websocket_echo_over_tls() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let tcp = tokio::net::TcpStream::connect(up.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&["http/1.1"]).unwrap());
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let url = up.url("localhost", "/ws").replace("https://", "wss://");
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::Text("ws-hello".into())).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::Text("ws-hello".into()));
    ws.send(Message::Binary(vec![1, 2, 3])).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::Binary(vec![1, 2, 3]));
    ws.close(None).await.unwrap();
    assert!(up.received_bytes_contains(b"ws-hello"));
    assert_eq!(up.requests_to("/ws").len(), 1);
}

#[test]
fn partial_body_is_logged_as_it_arrives() {
    use std::io::Write;
    let up = Upstream::start(UpstreamOptions::plain()).unwrap();
    let mut tcp = std::net::TcpStream::connect(up.addr).unwrap();
    tcp.write_all(
        b"POST /echo?k=v HTTP/1.1\r\nHost: upstream.test\r\nContent-Length: 100\r\n\r\npartial-xx",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !up.received_bytes_contains(b"partial-xx") {
        assert!(
            std::time::Instant::now() < deadline,
            "partial body never logged"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(up.in_flight(), 1);
    drop(tcp);
    assert!(up.wait_idle(Duration::from_secs(5)));
    let rec = &up.requests_to("/echo")[0];
    assert!(!rec.body_complete);
    assert_eq!(rec.body, b"partial-xx");
    assert_eq!(rec.host.as_deref(), Some("upstream.test"));
    assert_eq!(rec.path_and_query, "/echo?k=v");
}

#[test]
fn streamed_uploads_generated_and_from_file() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let len: u64 = 200 * 1024 * 1024;
    for http2 in [false, true] {
        let mut curl = Curl::new(up.url("localhost", "/upload"))
            .cacert(ca.ca_pem_path())
            .method("POST")
            .upload_generated(len, b'g');
        curl = if http2 { curl.http2() } else { curl.http1() };
        let out = curl.run().unwrap();
        assert_eq!(out.status, 200, "{out:?}");
        assert_eq!(out.json().unwrap()["bytes"], len);
    }
    let h1 = &up.requests_to("/upload")[0];
    assert_eq!(h1.method, "POST");
    assert_eq!(h1.version, "HTTP/1.1");
    assert_eq!(up.requests_to("/upload")[1].version, "HTTP/2.0");
    assert_eq!(h1.header("transfer-encoding"), Some("chunked"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, vec![b'f'; 3 * 1024 * 1024]).unwrap();
    let out = Curl::new(up.url("localhost", "/upload"))
        .cacert(ca.ca_pem_path())
        .upload_file(&file)
        .run()
        .unwrap();
    assert_eq!(out.json().unwrap()["bytes"], 3 * 1024 * 1024);
    let put = &up.requests_to("/upload")[2];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.header("content-length"), Some("3145728"));
}
