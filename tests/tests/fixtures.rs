//! Each fixture against real clients, without the proxy: if these fail, an
//! e2e failure through the proxy means nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use testkit::{
    git, git_clone, http_raw, python_requests, raw_connect, Curl, PyRequest, SClient, TestCa,
    Upstream, UpstreamOptions,
};

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
        if http2 {
            curl = curl.http2();
        }
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
        if http2 {
            curl = curl.http2();
        }
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
fn git_clone_over_https_and_backend_accepts_push() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, UpstreamOptions::with_git_repo);
    let repo = up.git_repo().unwrap().clone();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("clone");
    let url = up.url("localhost", "/git/repo.git");
    let out = git_clone(&url, &dest, None, Some(ca.ca_pem_path()), &[]).unwrap();
    assert!(
        out.status.success(),
        "clone failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(dest.join("README.md"))
        .unwrap()
        .contains("testkit"));
    let paths: Vec<String> = up.requests().iter().map(|r| r.uri.clone()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("info/refs?service=git-upload-pack")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("/git-upload-pack")),
        "{paths:?}"
    );

    // The backend accepts pushes, so a proxy test that sees a refusal proves the proxy refused.
    let d = dest.to_str().unwrap();
    std::fs::write(dest.join("new.txt"), "pushed\n").unwrap();
    let ca_path = ca.ca_pem_path().to_str().unwrap().to_owned();
    let env = [("GIT_SSL_CAINFO", ca_path.as_str())];
    assert!(git(&["-C", d, "add", "new.txt"], &env)
        .unwrap()
        .status
        .success());
    let commit = git(
        &[
            "-C",
            d,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e.invalid",
            "commit",
            "-qm",
            "x",
        ],
        &env,
    )
    .unwrap();
    assert!(
        commit.status.success(),
        "{}",
        String::from_utf8_lossy(&commit.stderr)
    );
    let push = git(&["-C", d, "push", "-q", "origin", "main"], &env).unwrap();
    assert!(
        push.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    let head = git(
        &[
            "--git-dir",
            repo.path.to_str().unwrap(),
            "rev-parse",
            "main",
        ],
        &[],
    )
    .unwrap();
    assert_ne!(String::from_utf8_lossy(&head.stdout).trim(), repo.head);
    assert!(up
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/git-receive-pack")));
}

#[test]
fn python_requests_get_and_post() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let get =
        python_requests(&PyRequest::get(up.url("localhost", "/echo?x=1")).ca(ca.ca_pem_path()))
            .unwrap();
    assert_eq!(get.status, 200, "{get:?}");
    assert!(get.text().contains("\"query\":\"x=1\""), "{}", get.text());
    let post = python_requests(
        &PyRequest::post(up.url("localhost", "/echo"), b"py-body".to_vec())
            .ca(ca.ca_pem_path())
            .header("X-Py", "1"),
    )
    .unwrap();
    assert_eq!(post.status, 200, "{post:?}");
    assert_eq!(up.requests_to("/echo")[1].body, b"py-body");
    let other = TestCa::new().unwrap();
    let bad =
        python_requests(&PyRequest::get(up.url("localhost", "/echo")).ca(other.ca_pem_path()))
            .unwrap();
    assert!(
        bad.error
            .as_deref()
            .unwrap_or_default()
            .contains("SSLError"),
        "{bad:?}"
    );
}

#[test]
fn s_client_verifies_against_test_ca() {
    let ca = TestCa::new().unwrap();
    let up = tls_upstream(&ca, |o| o);
    let out = SClient::new(format!("127.0.0.1:{}", up.port()))
        .servername("localhost")
        .cafile(ca.ca_pem_path())
        .alpn("h2")
        .run()
        .unwrap();
    assert!(out.verified(), "{out:?}");
    assert!(out.handshake_done(), "{out:?}");
    assert!(out.stdout.contains("ALPN protocol: h2"), "{}", out.stdout);
}

#[test]
fn test_upstream_binary_serves_and_records() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_test-upstream"))
        .args(["--plain", "--listen", "127.0.0.1:0", "--record"])
        .arg(&record)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let listen = ready["listen"].as_str().unwrap().to_owned();
    let out = Curl::new(format!("http://{listen}/echo"))
        .body(b"recorded-body".to_vec())
        .run()
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let text = std::fs::read_to_string(&record).unwrap();
    let rec: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(rec["path"], "/echo");
    assert_eq!(rec["body"], "recorded-body");
    child.kill().unwrap();
    child.wait().unwrap();
}
