//! DLP rule packs and the streaming engine that runs them.
//!
//! Packs (`rules/*.toml`) are data, embedded at build time. The engine finds keyword literals
//! with SIMD aho-corasick, confirms rule regexes only in windows around them, looks through
//! escape, base64, hex and `Content-Encoding` layers, and scans bodies as streams, telling the
//! caller how many bytes are safe to forward. See docs/DLP.md.

mod cli;
mod decode;
mod engine;
mod error;
mod filter;
mod finding;
mod known;
mod prefilter;
mod required;
mod rule;
mod scan;
mod stream;
mod tail;
#[cfg(test)]
mod testgen;
mod validate;
mod vector;

pub use cli::scan_reader;
pub use decode::compress::DecompressLimits;
pub use engine::{embedded_packs, read_pack_dir, Engine};
pub use error::DlpError;
pub use finding::{Finding, Location};
pub use known::{KnownSecret, MIN_KNOWN_SECRET_LEN};
pub use rule::{RuleInfo, Severity, DEFAULT_WINDOW, MAX_WINDOW};
pub use stream::{BodyContext, BodyScanner, Progress};
pub use validate::{github_token_with_checksum, VALIDATORS};

/// Re-exported so callers can build `KnownSecret`s without naming the crate version.
pub use secrecy::SecretString;
