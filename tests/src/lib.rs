//! End-to-end test fixtures for claude-bottle: a test PKI, a recording
//! upstream server (TLS or plain; h1/h2; echo, SSE, upload, download,
//! WebSocket, git smart HTTP), the real `egress-proxy` as a child process,
//! and real clients (curl, git, python requests, openssl s_client, raw TCP).
//!
//! Everything binds to loopback, has timeouts, and cleans up on drop.
//! See `tests/README.md` for what each fixture is for.

pub mod ca;
pub mod clients;
pub mod proxy;
pub mod tls_hello;
pub mod upstream;

pub use ca::TestCa;
pub use clients::{
    git, git_clone, http_raw, python_requests, raw_connect, run_with_stdin, run_with_timeout, Curl,
    CurlOutput, HttpVersion, PyRequest, PyResponse, RawResponse, SClient, SClientOutput, StdinData,
    TimedLines,
};
pub use proxy::{egress_proxy_bin, toml_str, ProxyCa, ProxyProcess};
pub use upstream::{GitRepo, Recorded, Upstream, UpstreamOptions};
