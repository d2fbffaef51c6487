//! Real clients (git, python requests, openssl s_client) and the
//! `test-upstream` binary against the upstream fixture, without the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use testkit::{
    git, git_clone, python_requests, Curl, PyRequest, SClient, TestCa, Upstream, UpstreamOptions,
};

fn tls_upstream(ca: &TestCa, opts: impl FnOnce(UpstreamOptions) -> UpstreamOptions) -> Upstream {
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1", "upstream.test"])
        .unwrap();
    Upstream::start(opts(UpstreamOptions::tls(cert, key))).unwrap()
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
