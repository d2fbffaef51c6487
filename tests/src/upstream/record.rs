//! What the upstream saw. Bytes are appended to the raw log *as frames
//! arrive*, not when a request completes, so a test can prove that not even
//! the first part of a secret reached the upstream before the proxy aborted.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use http::request::Parts;

/// Upper bound on the raw byte log so a multi-GiB test cannot exhaust memory;
/// `/upload` bodies are never logged (only counted) for the same reason.
pub const RAW_LOG_CAP: usize = 256 * 1024 * 1024;
/// Per-request cap on the stored body copy.
pub const RECORDED_BODY_CAP: usize = 16 * 1024 * 1024;

/// One request as the upstream received it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Request target as received (origin-form path and query for h1, path for h2).
    pub uri: String,
    /// Path component only.
    pub path: String,
    /// Path and query (`/v1/messages?x=1`), the same for h1 and h2.
    pub path_and_query: String,
    /// `:authority` (h2) or `Host` (h1), as received.
    pub host: Option<String>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Headers in arrival order, names lowercased, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for `/upload`; truncated at [`RECORDED_BODY_CAP`]).
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Number of body bytes received (counted even when not stored).
    pub body_len: u64,
    /// False when the body ended with an error (client/proxy aborted mid-body).
    pub body_complete: bool,
    /// The connection's remote address (the proxy's side of it): which pooled connection
    /// carried the request.
    pub peer: Option<std::net::SocketAddr>,
}

/// Set by the upstream on each request before its route runs (see `recorded_from_parts`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Body as lossy UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    raw: Vec<u8>,
    raw_truncated: bool,
    in_flight: usize,
}

/// Shared, cheaply clonable request log.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<Inner>>,
    sink: Option<Arc<Mutex<std::fs::File>>>,
}

impl Log {
    /// A log that also appends one JSON line per finished request to `path`
    /// (used by the `test-upstream` binary inside containers).
    pub fn with_file(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            inner: Arc::default(),
            sink: Some(Arc::new(Mutex::new(file))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned log still holds valid data; tests want to inspect it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends raw received bytes (bounded by [`RAW_LOG_CAP`]).
    pub fn raw(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let room = RAW_LOG_CAP.saturating_sub(inner.raw.len());
        if bytes.len() > room {
            inner.raw_truncated = true;
        }
        let take = bytes.len().min(room);
        inner.raw.extend_from_slice(&bytes[..take]);
    }

    /// Logs the request head into the raw log and marks a request in flight.
    pub fn begin(&self, parts: &Parts) {
        let mut head =
            format!("{} {} {:?}\r\n", parts.method, parts.uri, parts.version).into_bytes();
        for (name, value) in &parts.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        self.raw(&head);
        self.lock().in_flight += 1;
    }

    /// Stores the finished (or aborted) request.
    pub fn finish(&self, rec: Recorded) {
        if let Some(sink) = &self.sink {
            let mut line = serde_json::to_value(&rec).unwrap_or_default();
            if let Some(obj) = line.as_object_mut() {
                obj.insert("body".into(), serde_json::Value::String(rec.body_text()));
            }
            let mut file = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Best effort: a full disk must not take the upstream down mid-test.
            let _ = writeln!(file, "{line}");
        }
        let mut inner = self.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
        inner.requests.push(rec);
    }

    /// Snapshot of recorded requests.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Whether `needle` occurs anywhere in the raw log.
    pub fn raw_contains(&self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return true;
        }
        self.lock().raw.windows(needle.len()).any(|w| w == needle)
    }

    /// Copy of the raw log.
    pub fn raw_snapshot(&self) -> Vec<u8> {
        self.lock().raw.clone()
    }

    /// True once the raw log hit its cap (assertions of absence are then weaker).
    pub fn raw_truncated(&self) -> bool {
        self.lock().raw_truncated
    }

    /// Requests whose body is still being received.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.requests.clear();
        inner.raw.clear();
        inner.raw_truncated = false;
    }
}

/// Builds the head part of a [`Recorded`] from request parts.
pub fn recorded_from_parts(parts: &Parts) -> Recorded {
    Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        path: parts.uri.path().to_owned(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.to_string()),
        host: parts.uri.authority().map(|a| a.to_string()).or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        }),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
        body_len: 0,
        body_complete: true,
        peer: parts.extensions.get::<Peer>().map(|p| p.0),
    }
}
