//! In-tunnel credential injection (Codex-style): the agent holds a placeholder; on bumped
//! requests to the configured host, *after* DLP has scanned what the agent sent, the
//! placeholder in the configured header is swapped for the real token. Anywhere else the
//! placeholder passes unchanged — it is worthless outside this proxy.

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

use crate::config::{Config, ConfigError, Inject, Secrets};
use crate::policy::Target;
use crate::request::Prepare;

/// Injection rules paired with the tokens they inject.
#[derive(Default)]
pub struct Injector {
    rules: Vec<(Inject, SecretString)>,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> = self
            .rules
            .iter()
            .map(|(i, _)| i.host.authority(i.port))
            .collect();
        f.debug_struct("Injector")
            .field("hosts", &hosts)
            .finish_non_exhaustive()
    }
}

impl Injector {
    pub fn new(cfg: &Config, secrets: &Secrets) -> Result<Injector, ConfigError> {
        let mut rules = Vec::with_capacity(cfg.inject.len());
        for inject in &cfg.inject {
            let token = secrets.require(inject.token(), "inject")?;
            rules.push((inject.clone(), token.clone()));
        }
        Ok(Injector { rules })
    }

    /// The rewrite for a request to `target`, if any rule names it.
    pub fn for_target(&self, target: &Target) -> Option<Prepare> {
        let rules: Vec<(Inject, SecretString)> = self
            .rules
            .iter()
            .filter(|(i, _)| i.host == target.host && i.port == target.port)
            .cloned()
            .collect();
        if rules.is_empty() {
            return None;
        }
        Some(Box::new(move |parts: &mut http::request::Parts| {
            for (rule, token) in &rules {
                apply(parts, rule, token)?;
            }
            Ok(())
        }))
    }
}

fn apply(
    parts: &mut http::request::Parts,
    rule: &Inject,
    token: &SecretString,
) -> Result<(), String> {
    let current = parts
        .headers
        .get(&rule.header)
        .and_then(|v| v.to_str().ok());
    let Some(current) = current.filter(|v| v.contains(rule.placeholder.as_str())) else {
        if rule.require {
            return Err(format!(
                "requests to {} must carry the bottle placeholder in the {} header",
                rule.host.authority(rule.port),
                rule.header
            ));
        }
        return Ok(());
    };
    let swapped = current.replace(rule.placeholder.as_str(), token.expose_secret());
    let value = credential_header(swapped).ok_or_else(|| {
        format!(
            "the token for the {} header is not a valid header value",
            rule.header
        )
    })?;
    parts.headers.insert(rule.header.clone(), value);
    Ok(())
}

/// A header value carrying a credential: the plaintext copy is zeroized once the value is built,
/// and the value is marked sensitive so HTTP/2 never indexes it in HPACK tables.
pub(crate) fn credential_header(mut text: String) -> Option<HeaderValue> {
    let value = HeaderValue::from_str(&text);
    text.zeroize();
    let mut value = value.ok()?;
    value.set_sensitive(true);
    Some(value)
}
