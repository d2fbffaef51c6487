//! Tokens, read once at start from the proxy's environment or from files, and held only as
//! `SecretString`.
//!
//! Keyed by environment variable name or file path, so two routes naming the same source share
//! one secret, and the known-secret DLP check can iterate every token the proxy holds. Errors and
//! `Debug` output name variables and paths, never values.

use super::routes::TokenRef;
use super::{token_file, Config, ConfigError};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Every token the proxy holds, by environment variable name or file path.
#[derive(Clone, Default)]
pub struct Secrets {
    by_env: BTreeMap<String, SecretString>,
    /// Path → (its text, the id used in [`Secrets::iter`]), secret.
    by_file: BTreeMap<PathBuf, (String, SecretString)>,
}

impl Secrets {
    /// The secret read from environment variable `env_name`.
    pub fn get(&self, env_name: &str) -> Option<&SecretString> {
        self.by_env.get(env_name)
    }

    /// The secret read from the file at `path` (as the config names it, made absolute).
    pub fn get_file(&self, path: &Path) -> Option<&SecretString> {
        self.by_file.get(path).map(|(_, s)| s)
    }

    /// The secret for a route's or injection's token source.
    pub fn for_token(&self, token: TokenRef<'_>) -> Option<&SecretString> {
        match token {
            TokenRef::Env(name) => self.get(name),
            TokenRef::File(path) => self.get_file(path),
        }
    }

    /// The secret for `token`, or an error naming the source and the config key `key`.
    pub fn require(&self, token: TokenRef<'_>, key: &str) -> Result<&SecretString, ConfigError> {
        self.for_token(token).ok_or_else(|| match token {
            TokenRef::Env(name) => ConfigError::MissingEnv {
                var: name.to_owned(),
                key: key.to_owned(),
            },
            TokenRef::File(path) => ConfigError::TokenFile {
                path: path.to_owned(),
                key: key.to_owned(),
                why: "was not read at start".to_owned(),
            },
        })
    }

    /// All secrets (routes, injections and `dlp.known_secret_env`), for the known-secret matcher,
    /// named by variable name or file path (never containing `=`).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        let env = self.by_env.iter().map(|(k, v)| (k.as_str(), v));
        let files = self.by_file.values().map(|(id, v)| (id.as_str(), v));
        env.chain(files)
    }

    /// Names of the environment variables a token was read from (to scrub from the environment).
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.by_env.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_env.len() + self.by_file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_env.is_empty() && self.by_file.is_empty()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("env", &self.by_env.keys().collect::<Vec<_>>())
            .field("files", &self.by_file.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A token source named in the config: (key path, source, used in a header).
fn named_sources(cfg: &Config) -> Vec<(String, TokenRef<'_>, bool)> {
    let field = |t: &TokenRef<'_>| match t {
        TokenRef::Env(_) => "token_env",
        TokenRef::File(_) => "token_file",
    };
    let routes = cfg.routes.iter().enumerate().map(|(i, r)| {
        let t = r.token();
        (format!("routes[{i}].{}", field(&t)), t, true)
    });
    let inject = cfg.inject.iter().enumerate().map(|(i, r)| {
        let t = r.token();
        (format!("inject[{i}].{}", field(&t)), t, true)
    });
    let known = cfg.dlp.known_secret_env.iter().enumerate().map(|(i, v)| {
        (
            format!("dlp.known_secret_env[{i}]"),
            TokenRef::Env(v),
            false,
        )
    });
    routes.chain(inject).chain(known).collect()
}

/// Reads every named variable through `env` and every named file from disk; see
/// [`Config::resolve_secrets`].
pub(crate) fn resolve(
    cfg: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, ConfigError> {
    let mut secrets = Secrets::default();
    for (key, source, in_header) in named_sources(cfg) {
        match source {
            TokenRef::Env(var) => {
                let bad = |why: &'static str| ConfigError::BadSecret {
                    var: var.to_owned(),
                    key: key.clone(),
                    why,
                };
                if let Some(existing) = secrets.by_env.get(var) {
                    if in_header {
                        header_safe(existing).map_err(bad)?;
                    }
                    continue;
                }
                let value =
                    SecretString::from(env(var).ok_or_else(|| ConfigError::MissingEnv {
                        var: var.to_owned(),
                        key: key.clone(),
                    })?);
                if value.expose_secret().is_empty() {
                    return Err(bad("is empty"));
                }
                if in_header {
                    header_safe(&value).map_err(bad)?;
                }
                secrets.by_env.insert(var.to_owned(), value);
            }
            TokenRef::File(path) => {
                if secrets.by_file.contains_key(path) {
                    continue;
                }
                let value = token_file::read(path, &key)?;
                // Every file source is a route or injection token: it always goes into a header.
                header_safe(&value).map_err(|why| ConfigError::TokenFile {
                    path: path.to_owned(),
                    key: key.clone(),
                    why: why.to_owned(),
                })?;
                let id = path.to_string_lossy().into_owned();
                secrets.by_file.insert(path.to_owned(), (id, value));
            }
        }
    }
    Ok(secrets)
}

/// A token that goes into a header must be visible ASCII: a newline would be header injection,
/// and a trailing newline from `$(cat file)` is a common mistake worth a clear error.
fn header_safe(value: &SecretString) -> Result<(), &'static str> {
    if value.expose_secret().bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("contains whitespace, control or non-ASCII characters (not allowed in a header)")
    }
}
