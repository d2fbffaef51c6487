//! Config errors: every message names the key (and line) so `egress-proxy check` output is
//! actionable, and none ever contains a secret value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("TOML syntax error{}: {message}", at(*line))]
    Syntax {
        message: String,
        line: Option<usize>,
    },
    #[error("unknown key \"{key}\"{}{}", did_you_mean(suggestion.as_deref()), at(*line))]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
        line: Option<usize>,
    },
    #[error("{key}: {message}{}", at(*line))]
    Invalid {
        key: String,
        message: String,
        line: Option<usize>,
    },
    #[error("environment variable {var} (named by {key}) is not set")]
    MissingEnv { var: String, key: String },
    #[error("environment variable {var} (named by {key}) {why}")]
    BadSecret {
        var: String,
        key: String,
        why: &'static str,
    },
    /// `why` never holds file contents (io errors and fixed reasons only).
    #[error("token file {} (named by {key}) {why}", path.display())]
    TokenFile {
        path: PathBuf,
        key: String,
        why: String,
    },
}

impl ConfigError {
    /// The config key the error is about, if any (`egress.allow[2]`, `routes[0].token_env`).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::MissingEnv { key, .. }
            | ConfigError::BadSecret { key, .. }
            | ConfigError::TokenFile { key, .. } => Some(key),
            _ => None,
        }
    }

    /// 1-based line in the config file, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. }
            | ConfigError::UnknownKey { line, .. }
            | ConfigError::Invalid { line, .. } => *line,
            _ => None,
        }
    }
}

fn at(line: Option<usize>) -> String {
    line.map_or_else(String::new, |l| format!(" at line {l}"))
}

fn did_you_mean(s: Option<&str>) -> String {
    s.map_or_else(String::new, |s| format!(" (did you mean \"{s}\"?)"))
}
