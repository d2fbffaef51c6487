//! Human-readable dump of the compiled policy for `egress-proxy check`. Never prints secrets:
//! the policy holds environment variable names only.

use super::{Origin, Policy};
use std::fmt::Write;

impl Policy {
    /// The resolved policy: normalized entries with ports and modes (in decision order),
    /// private-address exemptions, static host overrides, routes, injections and DLP settings.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "egress (most specific entry wins; ties go to intercept):"
        )?;
        let mut rules: Vec<_> = self.rules.iter().collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.entry.specificity()));
        if rules.is_empty() {
            writeln!(out, "  (none: every destination is denied)")?;
        }
        for r in rules {
            let source = match &r.origin {
                Origin::Allow => "egress.allow".to_owned(),
                Origin::Passthrough => "egress.passthrough".to_owned(),
                Origin::Route(p) => format!("route {p}"),
                Origin::Inject => "inject".to_owned(),
            };
            let mut notes = Vec::new();
            match &r.entry.pattern {
                super::allowlist::Pattern::Wildcard(s) => {
                    notes.push(format!("matches {s} and every subdomain"))
                }
                super::allowlist::Pattern::Net(_) => notes.push(
                    "explicit IP: exempt from the private-address guard on these ports".to_owned(),
                ),
                super::allowlist::Pattern::Exact(_) => {}
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            };
            writeln!(
                out,
                "  {:<11} {:<40} {:<14} [{source}]{notes}",
                r.mode.as_str(),
                r.entry.to_string(),
                r.entry.ports.to_string()
            )?;
        }
        writeln!(out, "private-address exemptions (egress.allow_private):")?;
        if self.allow_private.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for n in &self.allow_private {
            writeln!(out, "  {n}")?;
        }
        writeln!(
            out,
            "static hosts (upstream.hosts; trusted, exempt from the guard):"
        )?;
        if self.hosts.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for (name, ip) in &self.hosts {
            writeln!(out, "  {name} -> {ip}")?;
        }
        match self.routes_listen {
            Some(addr) => writeln!(out, "routes (listening on {addr}):")?,
            None => writeln!(out, "routes: (none)")?,
        }
        for r in &self.routes {
            writeln!(
                out,
                "  {} -> {}  Authorization: {} <{}>",
                r.path,
                r.upstream,
                r.auth_scheme,
                r.token()
            )?;
        }
        writeln!(out, "inject:")?;
        if self.inject.is_empty() {
            writeln!(out, "  (none)")?;
        }
        for i in &self.inject {
            writeln!(
                out,
                "  {} header {}: {:?} -> <{}>{}",
                i.host.authority(i.port),
                i.header,
                i.placeholder,
                i.token(),
                if i.require { " (required)" } else { "" }
            )?;
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        writeln!(out, "dlp: mode {}", self.dlp.mode.as_str())?;
        writeln!(out, "  disabled rules: {}", list(&self.dlp.disable_rules))?;
        writeln!(out, "  warn-only rules: {}", list(&self.dlp.warn_rules))?;
        let exempt: Vec<String> = self
            .dlp
            .exempt_hosts
            .iter()
            .map(ToString::to_string)
            .collect();
        writeln!(out, "  exempt hosts: {}", list(&exempt))?;
        let known: Vec<String> = self
            .dlp
            .known_secret_env
            .iter()
            .map(|v| format!("${v}"))
            .collect();
        writeln!(out, "  known secrets from: {}", list(&known))?;
        Ok(())
    }
}
