//! Inspection: DLP over everything the agent sends — the request target, every header, and
//! the body as it streams. Runs before credential injection, so it sees exactly what the agent
//! produced and never the tokens the proxy adds on the way out.

pub mod body;
pub mod reflect;
pub mod websocket;

use std::sync::Arc;

use dlp_rules::{Engine, Finding, KnownSecret};

use crate::config::{Config, DlpConfig, DlpMode, Secrets};
use crate::limits::MAX_AUDITED_FINDINGS;
use crate::policy::Target;

/// Why the inspector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("DLP rules: {0}")]
    Dlp(#[from] dlp_rules::DlpError),
}

/// Rule id prefix of the findings for the proxy's own tokens (`known-secret:<name>`).
const KNOWN_PREFIX: &str = "known-secret:";

/// The compiled DLP engine plus the config's modes and exemptions.
pub struct Inspector {
    engine: Arc<Engine>,
    cfg: DlpConfig,
    /// Judge only known-secret findings: the view used for `exempt_hosts`.
    known_only: bool,
    /// The proxy's own tokens, looked for in responses (see `reflect`).
    reflection: Option<Arc<reflect::Reflection>>,
    /// That view, when there are known secrets and exempt hosts.
    exempt: Option<Arc<Inspector>>,
}

/// What a scan decided.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Every finding whose rule is not off (blocking and warning ones).
    pub findings: Vec<Finding>,
    /// The first finding whose mode is `block`, if any.
    pub blocking: Option<Finding>,
}

impl Verdict {
    pub fn is_blocked(&self) -> bool {
        self.blocking.is_some()
    }

    /// Adds a later piece's verdict (a body round, trailers); the audited list stays bounded
    /// however many pieces a request has.
    pub fn merge(&mut self, other: Verdict) {
        if self.blocking.is_none() {
            self.blocking = other.blocking;
        }
        let room = MAX_AUDITED_FINDINGS.saturating_sub(self.findings.len());
        self.findings.extend(other.findings.into_iter().take(room));
    }

    /// Findings as audit JSON (already redacted by the engine).
    pub fn audit_findings(&self) -> Vec<serde_json::Value> {
        self.findings
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
            .collect()
    }
}

impl Inspector {
    /// Builds the engine from the embedded packs, minus disabled rules, plus every token the
    /// proxy holds as an exact-match known secret (raw and encoded).
    pub fn new(cfg: &Config, secrets: &Secrets) -> Result<Inspector, InspectError> {
        let known: Vec<KnownSecret> = secrets
            .iter()
            .map(|(name, value)| KnownSecret::new(name, value.clone()))
            .collect();
        let mut engine = Engine::builtin()?;
        if !cfg.dlp.disable_rules.is_empty() {
            let ids: Vec<&str> = cfg.dlp.disable_rules.iter().map(String::as_str).collect();
            engine = engine.without_rules(&ids)?;
        }
        let has_known = !known.is_empty();
        let reflection = reflect::Reflection::new(&known).map(Arc::new);
        let engine = Arc::new(engine.with_known_secrets(known)?);
        // Exempt hosts are spared the rules (their false positives are what an exemption is
        // for) but not the proxy's own tokens: an exact match cannot be a false positive, and
        // no destination is trusted with a token the agent should never have held.
        let exempt = (has_known && !cfg.dlp.exempt_hosts.is_empty()).then(|| {
            Arc::new(Inspector {
                engine: Arc::clone(&engine),
                cfg: cfg.dlp.clone(),
                known_only: true,
                exempt: None,
                reflection: reflection.clone(),
            })
        });
        Ok(Inspector {
            engine,
            cfg: cfg.dlp.clone(),
            known_only: false,
            exempt,
            reflection,
        })
    }

    /// The check of responses for the proxy's own tokens (whatever the DLP mode: it protects
    /// the credentials, not the agent's data); `None` when the proxy holds none.
    pub fn reflection(&self) -> Option<&Arc<reflect::Reflection>> {
        self.reflection.as_ref()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// How requests to `target` are inspected: `None` when DLP is off, or the destination is
    /// exempt and there are no known secrets; the known-secrets-only view for other exempt
    /// destinations; else this inspector.
    pub fn for_target(self: &Arc<Self>, target: &Target) -> Option<Arc<Inspector>> {
        if self.cfg.mode == DlpMode::Off {
            return None;
        }
        if self.cfg.is_exempt(&target.host, target.port) {
            return self.exempt.clone();
        }
        Some(Arc::clone(self))
    }

    /// Sorts findings into a verdict by each rule's mode.
    pub fn judge(&self, findings: Vec<Finding>) -> Verdict {
        let mut v = Verdict::default();
        for f in findings {
            if self.known_only && !f.rule_id.starts_with(KNOWN_PREFIX) {
                continue;
            }
            let mode = self.mode_for(&f.rule_id);
            if mode == DlpMode::Block && v.blocking.is_none() {
                v.blocking = Some(f.clone());
            }
            // Every finding is judged; only the first few are kept for the audit line (a head
            // packed with matches must not make a line of megabytes).
            if mode != DlpMode::Off && v.findings.len() < MAX_AUDITED_FINDINGS {
                v.findings.push(f);
            }
        }
        v
    }

    fn mode_for(&self, rule_id: &str) -> DlpMode {
        // Known secrets are the proxy's own tokens: never downgraded by per-rule settings.
        if rule_id.starts_with(KNOWN_PREFIX) {
            return self.cfg.mode;
        }
        self.cfg.rule_mode(rule_id)
    }

    /// Scans the request target and every header.
    pub fn head(&self, parts: &http::request::Parts) -> Verdict {
        let mut findings = Vec::new();
        if let Some(pq) = parts.uri.path_and_query() {
            findings.extend(self.engine.scan_url(pq.as_str()));
        }
        self.scan_headers(&parts.headers, &mut findings);
        self.judge(findings)
    }

    /// Request trailers (HTTP/2, chunked HTTP/1): header fields that arrive after the body,
    /// scanned like the head's before they are released.
    pub fn trailers(&self, trailers: &http::HeaderMap) -> Verdict {
        let mut findings = Vec::new();
        self.scan_headers(trailers, &mut findings);
        self.judge(findings)
    }

    fn scan_headers(&self, headers: &http::HeaderMap, findings: &mut Vec<Finding>) {
        for (name, value) in headers {
            findings.extend(self.engine.scan_header(name.as_str(), value.as_bytes()));
        }
    }
}

/// The 403 body for a DLP block: what matched (redacted) and how to allow it if intended.
pub fn denial_body(method: &str, target: &Target, f: &Finding) -> String {
    let host = target.host_string();
    let rule = &f.rule_id;
    let mut body = format!(
        "egress-proxy: blocked {method} to {}\nreason: DLP rule {rule} matched in {} (preview {:?}, {} bytes)\n",
        target.authority(),
        f.location,
        f.preview,
        f.length,
    );
    if rule.starts_with("known-secret:") {
        body.push_str(
            "this is one of the bottle's own credentials; it may only leave through its route\n",
        );
    } else {
        body.push_str(&format!(
            "if this is intended, add to the proxy config:  [dlp] disable_rules = [\"{rule}\"]\n\
             or exempt the host:                           [dlp] exempt_hosts = [\"{host}\"]\n"
        ));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head packed with matches is judged in full (it blocks) but audits a bounded list.
    #[test]
    fn a_head_full_of_matches_blocks_and_keeps_a_bounded_list() {
        let cfg = Config::embedded_default().unwrap();
        let inspector = Inspector::new(&cfg, &Secrets::default()).unwrap();
        let tokens: Vec<String> = (0..200)
            .map(|i| format!("ghp_R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa{i:04}"))
            .collect();
        let (parts, ()) = http::Request::builder()
            .uri("/x")
            .header("x-tokens", tokens.join(" "))
            .body(())
            .unwrap()
            .into_parts();
        let v = inspector.head(&parts);
        assert!(v.blocking.is_some());
        assert_eq!(v.findings.len(), MAX_AUDITED_FINDINGS);
        // Merged over many pieces (body rounds), the list stays bounded; the first block stays.
        let first = v.blocking.clone();
        let mut all = Verdict::default();
        for _ in 0..10 {
            all.merge(inspector.head(&parts));
        }
        assert_eq!(all.findings.len(), MAX_AUDITED_FINDINGS);
        assert_eq!(all.blocking, first);
    }
}
