//! Shared setup for the proxy's end-to-end tests: a test PKI, a TLS upstream named
//! `upstream.test` (mapped to 127.0.0.1 by `[upstream.hosts]`), the proxy's own CA, and the
//! real `egress-proxy` binary started on a config built from those parts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod secrets;
pub mod ws;

use std::path::PathBuf;

use testkit::{toml_str, ProxyCa, ProxyProcess, TestCa, Upstream, UpstreamOptions};

pub const HOST: &str = "upstream.test";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_egress-proxy"))
}

/// A TLS upstream + the proxy in front of it.
pub struct Bench {
    pub test_ca: TestCa,
    pub upstream: Upstream,
    pub proxy_ca: ProxyCa,
    pub proxy: ProxyProcess,
}

pub struct Setup {
    pub alpn_h1_only: bool,
    pub git: bool,
    /// Extra TOML appended to the config (more sections or keys). `@PORT@` is replaced by the
    /// upstream's port.
    pub extra: String,
    /// TOML inserted at the top of the config, before any table (top-level keys such as
    /// `routes_listen`). `@PORT@` is replaced by the upstream's port.
    pub top: String,
    /// Extra `[egress] allow` entries (`@PORT@` is replaced by the upstream's port).
    pub allow: Vec<String>,
    pub passthrough: bool,
    pub trust_upstream: bool,
    pub env: Vec<(String, String)>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            alpn_h1_only: false,
            git: false,
            extra: String::new(),
            top: String::new(),
            allow: Vec::new(),
            passthrough: false,
            trust_upstream: true,
            env: Vec::new(),
        }
    }
}

impl Bench {
    pub fn start() -> Bench {
        Self::with(Setup::default())
    }

    pub fn with(setup: Setup) -> Bench {
        let test_ca = TestCa::new().unwrap();
        let (cert, key) = test_ca
            .issue(&[HOST, "alt.upstream.test", "127.0.0.1"])
            .unwrap();
        let mut opts = UpstreamOptions::tls(cert, key);
        if setup.alpn_h1_only {
            opts = opts.h1_only();
        }
        if setup.git {
            opts = opts.with_git_repo();
        }
        let upstream = Upstream::start(opts).unwrap();
        let proxy_ca = ProxyCa::init(&bin()).unwrap();
        let port = upstream.port();
        // A host in both lists would be intercepted (the tie goes to inspection).
        let mut allow = vec![format!("alt.upstream.test:{port}")];
        if !setup.passthrough {
            allow.push(format!("{HOST}:{port}"));
        }
        allow.extend(
            setup
                .allow
                .iter()
                .map(|a| a.replace("@PORT@", &port.to_string())),
        );
        let allow_list = allow
            .iter()
            .map(|a| toml_str(a))
            .collect::<Vec<_>>()
            .join(", ");
        let passthrough = if setup.passthrough {
            toml_str(&format!("{HOST}:{port}"))
        } else {
            String::new()
        };
        let roots = if setup.trust_upstream {
            toml_str(&test_ca.ca_pem_path().to_string_lossy())
        } else {
            String::new()
        };
        let config = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{extra_top}\n{ca}\n[egress]\nallow = [{allow_list}]\npassthrough = [{passthrough}]\n\n[upstream]\nextra_roots = [{roots}]\n[upstream.hosts]\n\"{HOST}\" = \"127.0.0.1\"\n\"alt.upstream.test\" = \"127.0.0.1\"\n{extra}\n",
            extra_top = setup.top.replace("@PORT@", &port.to_string()),
            ca = proxy_ca.config_section(),
            extra = setup.extra.replace("@PORT@", &port.to_string()),
        );
        let env: Vec<(&str, &str)> = setup
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let proxy = ProxyProcess::start(&bin(), &config, &env).unwrap();
        Bench {
            test_ca,
            upstream,
            proxy_ca,
            proxy,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.upstream.url(HOST, path)
    }

    /// The proxy CA: what clients trust for bumped tunnels.
    pub fn ca(&self) -> PathBuf {
        self.proxy_ca.cert_path()
    }

    pub fn curl(&self, path: &str) -> testkit::Curl {
        testkit::Curl::new(self.url(path))
            .proxy(self.proxy.proxy_url())
            .cacert(self.proxy_ca.cert_path())
    }

    /// The audit events with the given decision.
    pub fn audit(&self, decision: &str) -> Vec<serde_json::Value> {
        self.proxy
            .audit_lines()
            .into_iter()
            .filter(|e| e["decision"] == decision)
            .collect()
    }
}

/// A rustls client config trusting only `ca_pem`, offering http/1.1 (WebSocket clients that
/// talk TLS through a raw CONNECT tunnel).
pub fn h1_tls_client(ca_pem: &std::path::Path) -> std::sync::Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca_pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    std::sync::Arc::new(config)
}
