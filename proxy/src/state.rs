//! The process-wide proxy state every connection shares. Built once at start; nothing in it
//! is rebuilt per connection (policy, resolver cache, cert cache, upstream pool).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};

use crate::audit::{self, Decision, Event};
use crate::body;
use crate::config::ClientsConfig;
use crate::forward::{ProxyBody, Upstream};
use crate::inject::Injector;
use crate::inspect::{Inspector, Verdict};
use crate::metrics::Metrics;
use crate::policy::{Denial, Policy, Resolver};
use crate::route::RouteTable;

pub struct Proxy {
    pub policy: Arc<Policy>,
    pub resolver: Arc<Resolver>,
    pub certs: certs::CertCache,
    /// One upstream client (and so one connection pool) per shard, so a pooled connection is
    /// only ever used by the thread that opened it (see `shard`): shard 0's, then the others'.
    upstream: Upstream,
    shard_upstreams: Vec<Upstream>,
    /// Which shard serves each new connection (see `shard`).
    pub shards: crate::shard::Shards,
    pub audit: audit::Sink,
    pub metrics: Arc<Metrics>,
    pub inspector: Arc<Inspector>,
    pub injector: Injector,
    pub routes: RouteTable,
    /// Who may connect to the proxy and routes listeners (`[clients]`).
    pub clients: ClientsConfig,
    conn_ids: AtomicU64,
}

/// The parts `Proxy::new` assembles.
pub struct Parts {
    pub policy: Arc<Policy>,
    pub resolver: Arc<Resolver>,
    pub certs: certs::CertCache,
    /// Shard 0's upstream client.
    pub upstream: Upstream,
    /// Shards 1.. each get their own (empty with one shard).
    pub shard_upstreams: Vec<Upstream>,
    pub shards: crate::shard::Shards,
    pub audit: audit::Sink,
    pub inspector: Arc<Inspector>,
    pub injector: Injector,
    pub routes: RouteTable,
    pub clients: ClientsConfig,
}

impl Proxy {
    pub fn new(p: Parts) -> Self {
        Proxy {
            policy: p.policy,
            resolver: p.resolver,
            certs: p.certs,
            upstream: p.upstream,
            shard_upstreams: p.shard_upstreams,
            shards: p.shards,
            audit: p.audit,
            inspector: p.inspector,
            injector: p.injector,
            routes: p.routes,
            clients: p.clients,
            metrics: Arc::new(Metrics::default()),
            conn_ids: AtomicU64::new(1),
        }
    }

    /// The upstream client of the shard this thread serves.
    pub fn upstream(&self) -> &Upstream {
        match crate::shard::index() {
            0 => &self.upstream,
            i => self.shard_upstreams.get(i - 1).unwrap_or(&self.upstream),
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// A policy denial: audited, counted, and answered with the 403 body that says how to
    /// allow the request.
    pub fn deny(&self, mut event: Event, denial: &Denial) -> Response<ProxyBody> {
        // The audit names the host as policy read it (`2130706433` is 127.0.0.1, `UPSTREAM.TEST.`
        // is upstream.test), so a search for the normal form finds every attempt.
        denial.host.clone_into(&mut event.host);
        self.redact_unscanned_path(&mut event);
        let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
        let body = denial.body_for(&event.method);
        event.outcome(Decision::Deny, status.as_u16(), denial.reason_line());
        self.metrics.decision("deny", denial.reason.class());
        self.audit.emit(event);
        body::response(status, body)
    }

    /// Refusals made before DLP has looked at the request (policy, fronting, framing, route
    /// paths) would audit a secret sitting in a path segment or query key as it is; the audited
    /// path (query values already dropped) is scanned first and redacted on any finding.
    fn redact_unscanned_path(&self, event: &mut Event) {
        let engine = self.inspector.engine();
        if !event.path.is_empty()
            && event.path != crate::audit::REDACTED_PATH
            && !engine.scan_url(&event.path).is_empty()
        {
            event.redact_path();
        }
        // A name is attacker-chosen too (`CONNECT ghp_….evil.test:443`).
        if !event.host.is_empty() && !engine.scan_url(&event.host).is_empty() {
            crate::audit::REDACTED_HOST.clone_into(&mut event.host);
        }
    }

    /// A DLP block: audited with the redacted findings, answered with a 403 that names the rule.
    pub fn refuse_dlp(
        &self,
        mut event: Event,
        verdict: &Verdict,
        body: String,
    ) -> Response<ProxyBody> {
        let reason = verdict.blocking.as_ref().map_or_else(
            || "dlp".to_owned(),
            |f| format!("dlp: {} in {}", f.rule_id, f.location),
        );
        event.findings = verdict.audit_findings();
        event.outcome(Decision::Deny, 403, reason);
        self.metrics.decision("deny", "dlp");
        self.metrics.dlp_findings(verdict.findings.len() as u64);
        self.audit.emit(event);
        body::response(StatusCode::FORBIDDEN, body)
    }

    /// Any other refusal the proxy makes itself (fronting, smuggling, protocol errors).
    pub fn refuse(
        &self,
        mut event: Event,
        status: StatusCode,
        class: &'static str,
        why: String,
    ) -> Response<ProxyBody> {
        self.redact_unscanned_path(&mut event);
        event.outcome(Decision::Deny, status.as_u16(), why.clone());
        self.metrics.decision("deny", class);
        self.audit.emit(event);
        body::response(status, format!("egress-proxy: refused: {why}\n"))
    }
}
