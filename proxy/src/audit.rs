//! One JSON line per decision. The audit stream is the user's record of what the agent tried,
//! so it is complete and ordered (written in batches within 50 ms, see `sink`) and never carries
//! a secret: query values are dropped from paths and DLP findings arrive already redacted.

use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;

mod json;
mod sink;
pub use sink::Sink;

/// What kind of traffic the event describes.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A CONNECT request (the tunnel decision).
    Connect,
    /// A request inside a bumped tunnel, or an absolute-form plain HTTP request.
    Request,
    /// A passthrough tunnel, when it closes.
    Tunnel,
    /// A credential route request on the routes listener.
    Route,
}

impl Kind {
    /// The serde name (lowercase), for the hand-written line in `json`.
    fn as_str(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Request => "request",
            Kind::Tunnel => "tunnel",
            Kind::Route => "route",
        }
    }
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Error,
}

impl Decision {
    /// The serde name (lowercase), for the hand-written line in `json`.
    fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }
}

/// One audit line. Field names are a public contract (scripts parse them). `Serialize` is the
/// reference form; `json::write_event` writes the same bytes faster (tested to agree).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: String,
    pub conn: u64,
    pub kind: Kind,
    pub client: Option<SocketAddr>,
    pub method: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub decision: Decision,
    pub reason: String,
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<serde_json::Value>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl Event {
    /// Starts an event; `finish` stamps the duration.
    pub fn begin(conn: u64, kind: Kind, client: Option<SocketAddr>) -> Self {
        Event {
            time: now_rfc3339(),
            conn,
            kind,
            client,
            method: String::new(),
            host: String::new(),
            port: 0,
            path: String::new(),
            decision: Decision::Allow,
            reason: String::new(),
            status: 0,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            findings: Vec::new(),
            started: Some(Instant::now()),
        }
    }

    /// An unlisted method is recorded as such, never spelled out (it could be anything).
    pub fn target(mut self, method: &str, host: &str, port: u16, path_and_query: &str) -> Self {
        crate::policy::method::for_audit(method).clone_into(&mut self.method);
        host.clone_into(&mut self.host);
        self.port = port;
        self.path = redact_query(path_and_query);
        self
    }

    /// Drops the path: a DLP finding lies in the URL, and query values are all
    /// `redact_query` removes (a secret in a path segment or a query key would stay).
    pub fn redact_path(&mut self) {
        REDACTED_PATH.clone_into(&mut self.path);
    }

    pub fn outcome(&mut self, decision: Decision, status: u16, reason: impl Into<String>) {
        self.decision = decision;
        self.status = status;
        self.reason = reason.into();
    }

    fn stamp(&mut self) {
        if let Some(started) = self.started {
            self.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        }
    }
}

/// The audited path of a request whose URL holds a DLP finding.
pub const REDACTED_PATH: &str = "[redacted: DLP finding in the URL]";

/// The audited host of a refused request whose host name holds a DLP finding.
pub const REDACTED_HOST: &str = "[redacted: DLP finding in the host]";

/// Keeps query keys (useful to read) and drops their values (where tokens hide).
pub fn redact_query(path_and_query: &str) -> String {
    match path_and_query.split_once('?') {
        None => path_and_query.to_owned(),
        Some((path, query)) => {
            let keys: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k))
                .collect();
            let mut out = String::with_capacity(path.len() + query.len());
            out.push_str(path);
            out.push('?');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push('&');
                }
                out.push_str(k);
                out.push('=');
            }
            out
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Sink {
    /// Queues one line for the audit stream (written within `sink::FLUSH_AFTER`). Failures are
    /// logged, never fatal to the request: the decision was already enforced.
    pub fn emit(&self, mut event: Event) {
        event.stamp();
        let pushed = self.push_with(|buf| json::write_event(&event, buf));
        if let Err(e) = pushed {
            tracing::error!(error = %e, "audit event not serializable");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_dropped_keys_kept() {
        assert_eq!(
            redact_query("/a/b?token=s3cr3t&x=1&flag"),
            "/a/b?token=&x=&flag="
        );
        assert_eq!(redact_query("/plain"), "/plain");
    }
}
