//! Prometheus text metrics. Counters are plain atomics: a scrape reads them without
//! coordinating with the data path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Process-wide counters.
#[derive(Default)]
pub struct Metrics {
    decisions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    active_connections: AtomicI64,
    connections_total: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    dlp_findings: AtomicU64,
}

/// Cert cache figures supplied at scrape time by the certs crate.
#[derive(Debug, Default, Clone, Copy)]
pub struct CertCacheFigures {
    pub hits: u64,
    pub misses: u64,
    pub size: u64,
}

impl Metrics {
    /// Counts a decision. `reason` is a short static class (e.g. "allowlist", "ssrf", "dlp"),
    /// never free text: label cardinality must stay bounded.
    pub fn decision(&self, decision: &'static str, reason: &'static str) {
        if let Ok(mut map) = self.decisions.lock() {
            *map.entry((decision, reason)).or_insert(0) += 1;
        }
    }

    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            metrics: Arc::clone(self),
        }
    }

    pub fn add_bytes(&self, up: u64, down: u64) {
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.bytes_down.fetch_add(down, Ordering::Relaxed);
    }

    pub fn dlp_findings(&self, n: u64) {
        self.dlp_findings.fetch_add(n, Ordering::Relaxed);
    }

    pub fn active_connections(&self) -> i64 {
        self.active_connections.load(Ordering::Relaxed)
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, certs: CertCacheFigures) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP egress_decisions_total Policy decisions by outcome and reason class.\n",
        );
        out.push_str("# TYPE egress_decisions_total counter\n");
        if let Ok(map) = self.decisions.lock() {
            for ((decision, reason), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "egress_decisions_total{{decision=\"{decision}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        let gauges: [(&str, &str, &str, i64); 1] = [(
            "egress_active_connections",
            "gauge",
            "Client connections currently open.",
            self.active_connections.load(Ordering::Relaxed),
        )];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        let counters: [(&str, &str, u64); 8] = [
            (
                "egress_connections_total",
                "Client connections accepted.",
                self.connections_total.load(Ordering::Relaxed),
            ),
            (
                "egress_bytes_up_total",
                "Request body bytes forwarded upstream.",
                self.bytes_up.load(Ordering::Relaxed),
            ),
            (
                "egress_bytes_down_total",
                "Response body bytes returned to clients.",
                self.bytes_down.load(Ordering::Relaxed),
            ),
            (
                "egress_dlp_findings_total",
                "DLP findings (any mode).",
                self.dlp_findings.load(Ordering::Relaxed),
            ),
            (
                "egress_cert_cache_hits_total",
                "Leaf certificate cache hits.",
                certs.hits,
            ),
            (
                "egress_cert_cache_misses_total",
                "Leaf certificate cache misses (leaves signed).",
                certs.misses,
            ),
            (
                "egress_cert_cache_size",
                "Leaf certificates cached.",
                certs.size,
            ),
            ("egress_build_info", "Build information.", 1),
        ];
        for (name, help, v) in counters {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

/// Decrements the active-connection gauge when the connection task ends, however it ends.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauge() {
        let m = Arc::new(Metrics::default());
        m.decision("deny", "allowlist");
        m.decision("deny", "allowlist");
        let g = m.connection_opened();
        let text = m.render(CertCacheFigures {
            hits: 3,
            misses: 1,
            size: 1,
        });
        assert!(text.contains("egress_decisions_total{decision=\"deny\",reason=\"allowlist\"} 2"));
        assert!(text.contains("egress_active_connections 1"));
        assert!(text.contains("egress_cert_cache_hits_total 3"));
        drop(g);
        assert_eq!(m.active_connections(), 0);
    }
}
