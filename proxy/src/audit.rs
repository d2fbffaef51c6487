//! One JSON line per decision. The audit stream is the user's record of what the agent tried,
//! so it is written synchronously (a line per event, flushed) and never carries a secret:
//! query values are dropped from paths and DLP findings arrive already redacted.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use serde::Serialize;

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

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Error,
}

/// One audit line. Field names are a public contract (scripts parse them).
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

    pub fn target(mut self, method: &str, host: &str, port: u16, path_and_query: &str) -> Self {
        method.clone_into(&mut self.method);
        host.clone_into(&mut self.host);
        self.port = port;
        self.path = redact_query(path_and_query);
        self
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

/// Audit lines waiting for the writer thread. A full queue makes `emit` wait (backpressure on
/// the data path) rather than drop a line: the audit is the user's record.
pub const AUDIT_QUEUE_LINES: usize = 8192;

/// How long a flush (at shutdown) waits for the writer to catch up.
pub const AUDIT_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// Where audit lines go. Serialization happens on the caller; the write happens on a dedicated
/// thread that batches whatever is queued into one write and one flush, so a busy proxy makes
/// one syscall per batch instead of one per request, and an idle one still writes each line
/// at once.
pub struct Sink {
    tx: SyncSender<Msg>,
}

impl Sink {
    pub fn stdout() -> std::io::Result<Self> {
        Self::spawn(Box::new(std::io::stdout()))
    }

    pub fn stderr() -> std::io::Result<Self> {
        Self::spawn(Box::new(std::io::stderr()))
    }

    pub fn file(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::spawn(Box::new(f))
    }

    fn spawn(out: Box<dyn Write + Send>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(AUDIT_QUEUE_LINES);
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_batches(out, &rx))?;
        Ok(Sink { tx })
    }

    /// Queues one line. An audit failure is logged, never fatal to the request: the decision
    /// was already enforced.
    pub fn emit(&self, mut event: Event) {
        event.stamp();
        let mut line = match serde_json::to_vec(&event) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit event not serializable");
                return;
            }
        };
        line.push(b'\n');
        if self.tx.send(Msg::Line(line)).is_err() {
            tracing::error!("audit writer is gone");
        }
    }

    /// Waits until every line queued so far is written (shutdown).
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(AUDIT_FLUSH_TIMEOUT);
        }
    }
}

fn write_batches(out: Box<dyn Write + Send>, rx: &Receiver<Msg>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    if let Err(e) = out.write_all(&line) {
                        tracing::error!(error = %e, "audit write failed");
                    }
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "audit write failed");
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    let _ = out.flush();
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
