//! Errors. None of them carries scanned bytes: an error message may end up in a log or a 403 body.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DlpError {
    #[error("rule pack {pack}: {msg}")]
    Pack { pack: String, msg: String },
    #[error("rule {rule}: {msg}")]
    Rule { rule: String, msg: String },
    #[error("no DLP rules loaded")]
    NoRules,
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedEncoding(String),
    #[error("decompression refused: {0}")]
    DecompressionLimit(&'static str),
    #[error("malformed {encoding} body: {msg}")]
    Decode { encoding: &'static str, msg: String },
    #[error("body scanner already finished")]
    Finished,
    #[error("I/O error while scanning: {0}")]
    Io(#[from] std::io::Error),
}
