//! Tokens, read once from the proxy's environment and held only as `SecretString`.
//!
//! Keyed by environment variable name, so two routes naming the same variable share one secret,
//! and the known-secret DLP check can iterate every token the proxy holds. Errors and `Debug`
//! output name variables, never values.

use super::{Config, ConfigError};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::fmt;

/// Every token the proxy holds, by environment variable name.
#[derive(Clone, Default)]
pub struct Secrets {
    by_env: BTreeMap<String, SecretString>,
}

impl Secrets {
    /// The secret read from `env_name`.
    pub fn get(&self, env_name: &str) -> Option<&SecretString> {
        self.by_env.get(env_name)
    }

    /// All secrets (routes, injections and `dlp.known_secret_env`), for the known-secret matcher.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.by_env.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.by_env.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_env.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("env", &self.by_env.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a variable is named, for error messages: (key path, variable, used in a header).
fn named_vars(cfg: &Config) -> Vec<(String, &str, bool)> {
    let routes = cfg
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("routes[{i}].token_env"), r.token_env.as_str(), true));
    let inject = cfg
        .inject
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("inject[{i}].token_env"), r.token_env.as_str(), true));
    let known = cfg
        .dlp
        .known_secret_env
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("dlp.known_secret_env[{i}]"), v.as_str(), false));
    routes.chain(inject).chain(known).collect()
}

/// Reads every named variable through `env`; see [`Config::resolve_secrets`].
pub(crate) fn resolve(
    cfg: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, ConfigError> {
    let mut by_env = BTreeMap::new();
    for (key, var, in_header) in named_vars(cfg) {
        if let Some(existing) = by_env.get(var) {
            if in_header {
                check_header_safe(existing, var, &key)?;
            }
            continue;
        }
        let value = SecretString::from(env(var).ok_or_else(|| ConfigError::MissingEnv {
            var: var.to_owned(),
            key: key.clone(),
        })?);
        if value.expose_secret().is_empty() {
            return Err(ConfigError::BadSecret {
                var: var.to_owned(),
                key,
                why: "is empty",
            });
        }
        if in_header {
            check_header_safe(&value, var, &key)?;
        }
        by_env.insert(var.to_owned(), value);
    }
    Ok(Secrets { by_env })
}

/// A token that goes into a header must be visible ASCII: a newline would be header injection,
/// and a trailing newline from `$(cat file)` is a common mistake worth a clear error.
fn check_header_safe(value: &SecretString, var: &str, key: &str) -> Result<(), ConfigError> {
    if value.expose_secret().bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ConfigError::BadSecret {
            var: var.to_owned(),
            key: key.to_owned(),
            why: "contains whitespace, control or non-ASCII characters (not allowed in a header)",
        })
    }
}
