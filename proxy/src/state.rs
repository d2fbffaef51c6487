//! The process-wide proxy state every connection shares. Built once at start; nothing in it
//! is rebuilt per connection (policy, resolver cache, cert cache, upstream pool).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};

use crate::audit::{self, Decision, Event};
use crate::body;
use crate::forward::{ProxyBody, Upstream};
use crate::metrics::Metrics;
use crate::policy::{Denial, Policy, Resolver};

pub struct Proxy {
    pub policy: Arc<Policy>,
    pub resolver: Arc<Resolver>,
    pub certs: certs::CertCache,
    pub upstream: Upstream,
    pub audit: audit::Sink,
    pub metrics: Arc<Metrics>,
    conn_ids: AtomicU64,
}

impl Proxy {
    pub fn new(
        policy: Arc<Policy>,
        resolver: Arc<Resolver>,
        certs: certs::CertCache,
        upstream: Upstream,
        audit: audit::Sink,
    ) -> Self {
        Proxy {
            policy,
            resolver,
            certs,
            upstream,
            audit,
            metrics: Arc::new(Metrics::default()),
            conn_ids: AtomicU64::new(1),
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// A policy denial: audited, counted, and answered with the 403 body that says how to
    /// allow the request.
    pub fn deny(&self, mut event: Event, denial: &Denial) -> Response<ProxyBody> {
        let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
        let body = denial.body_for(&event.method);
        event.outcome(Decision::Deny, status.as_u16(), denial.reason_line());
        self.metrics.decision("deny", denial.reason.class());
        self.audit.emit(event);
        body::response(status, body)
    }

    /// Any other refusal the proxy makes itself (fronting, smuggling, protocol errors).
    pub fn refuse(
        &self,
        mut event: Event,
        status: StatusCode,
        class: &'static str,
        why: String,
    ) -> Response<ProxyBody> {
        event.outcome(Decision::Deny, status.as_u16(), why.clone());
        self.metrics.decision("deny", class);
        self.audit.emit(event);
        body::response(status, format!("egress-proxy: refused: {why}\n"))
    }
}
