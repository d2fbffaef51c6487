//! Findings: what is audited about a hit. They carry positions and a short preview, never the
//! matched value, so `Debug`, `Display` and `Serialize` are all safe to log.

use serde::Serialize;

use crate::rule::Severity;

/// Where the scanned bytes came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    Url,
    Header { name: String },
    Body,
    WebSocketMessage,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Url => f.write_str("url"),
            Location::Header { name } => write!(f, "header {name}"),
            Location::Body => f.write_str("body"),
            Location::WebSocketMessage => f.write_str("websocket message"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id, or `known-secret:<id>` for an exact known secret.
    pub rule_id: String,
    pub location: Location,
    /// Offset of the first byte of the match in the scanned input as received (for a body with a
    /// `Content-Encoding`: in the decompressed stream).
    pub offset: u64,
    /// Length in input bytes of the match (encoded length when found through a decoding layer).
    pub length: usize,
    /// A few leading characters of the decoded match and `…`.
    pub preview: String,
    pub severity: Severity,
    /// Decoding layers the match was found through, e.g. `""`, `"escaped"`, `"gzip+base64"`.
    pub encoding: String,
    /// Validator result: `Some(true)` checksum verified, `Some(false)` did not, `None` no validator.
    pub validated: Option<bool>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in {} at {}+{} ({})",
            self.rule_id, self.location, self.offset, self.length, self.preview
        )?;
        if !self.encoding.is_empty() {
            write!(f, " via {}", self.encoding)?;
        }
        Ok(())
    }
}

/// Longest keyword shown in a preview.
const MAX_PREVIEW: usize = 16;

/// The match's leading keyword (`ghp_…`, `sk-ant-api03-…`) if it starts with one of the rule's
/// literals, else nothing (`…`): a preview tells an operator which kind of credential it was
/// without a single character of the secret itself (known secrets, URL passwords and the like
/// show nothing).
pub(crate) fn preview(matched: &[u8], literals: &[String]) -> String {
    let n = literals
        .iter()
        .map(String::as_bytes)
        .filter(|l| l.len() <= MAX_PREVIEW && matched.starts_with(l))
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let mut s: String = matched[..n]
        .iter()
        .map(|&b| {
            if b == b' ' || b.is_ascii_graphic() {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_shows_the_keyword_and_nothing_of_the_secret() {
        let kw = vec!["ghp_".to_string(), "gh".to_string()];
        assert_eq!(
            preview(b"ghp_abcdefghijklmnopqrstuvwxyz0123456789", &kw),
            "ghp_…"
        );
        assert_eq!(preview(b"xghp_abcdefghijklmnop", &kw), "…");
        assert_eq!(preview(b"hunter2!", &[]), "…");
        let long = vec!["a-keyword-longer-than-sixteen".to_string()];
        assert_eq!(preview(b"a-keyword-longer-than-sixteen=s3cr3t", &long), "…");
    }
}
