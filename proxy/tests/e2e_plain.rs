//! Absolute-form plain-HTTP proxying (`HTTP_PROXY`): allowed hosts pass, the Host header must
//! agree with the request URI, and denials carry the same explanatory 403 as CONNECT.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use testkit::{
    http_raw, toml_str, Curl, ProxyCa, ProxyProcess, RawResponse, Upstream, UpstreamOptions,
};

fn start() -> (Upstream, ProxyCa, ProxyProcess) {
    let upstream = Upstream::start(UpstreamOptions::plain()).unwrap();
    let ca = ProxyCa::init(&common::bin()).unwrap();
    let port = upstream.port();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n{}\n[egress]\nallow = [{}]\n[upstream.hosts]\n\"plain.test\" = \"127.0.0.1\"\n",
        ca.config_section(),
        toml_str(&format!("plain.test:{port}")),
    );
    let proxy = ProxyProcess::start(&common::bin(), &config, &[]).unwrap();
    (upstream, ca, proxy)
}

#[test]
fn absolute_form_get_and_post_reach_an_allowed_plain_host() {
    let (upstream, _ca, proxy) = start();
    let url = upstream.url("plain.test", "/echo?x=1");
    let get = Curl::new(&url).proxy(proxy.proxy_url()).run().unwrap();
    assert_eq!(get.status, 200, "{}", get.stderr);
    let post = Curl::new(&url)
        .proxy(proxy.proxy_url())
        .method("POST")
        .body(b"hello".to_vec())
        .run()
        .unwrap();
    assert_eq!(post.status, 200);
    assert_eq!(post.json().unwrap()["body"], "hello");
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter().all(|r| r.header("proxy-connection").is_none()),
        "hop-by-hop headers stripped"
    );
    let events: Vec<_> = proxy
        .audit_lines()
        .into_iter()
        .filter(|e| e["kind"] == "request")
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["method"], "POST");
    assert_eq!(events[1]["bytes_up"], 5);
}

#[test]
fn host_header_that_disagrees_with_the_uri_is_400() {
    let (upstream, _ca, proxy) = start();
    let port = upstream.port();
    let req = format!("GET http://plain.test:{port}/echo HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n");
    let raw = http_raw(proxy.listen_addr(), req.as_bytes(), Duration::from_secs(10)).unwrap();
    assert_eq!(RawResponse::parse(&raw).unwrap().status, 400);
    assert!(upstream.requests().is_empty());
}

#[test]
fn denied_plain_host_gets_the_explanatory_403() {
    let (_upstream, _ca, proxy) = start();
    let out = Curl::new("http://not-allowed.example/x")
        .proxy(proxy.proxy_url())
        .run()
        .unwrap();
    assert_eq!(out.status, 403);
    let body = out.text();
    assert!(
        body.contains("not-allowed.example") && body.contains("GET"),
        "{body}"
    );
}
