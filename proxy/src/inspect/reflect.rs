//! The other way a credential reaches the agent: back from the upstream. The agent never holds
//! a real token, the proxy adds it on the way out; but an upstream may hand it back (a debug
//! endpoint that echoes the request, httpbin's `/anything`, an error body quoting the key).
//! Once the agent holds it, it can carry it out in a shape no pattern engine recognises
//! (reversed, split). So the responses to exchanges the proxy added a credential to are checked
//! for the proxy's own tokens, in the encodings DLP matches them in, and cut on a hit.
//!
//! Streaming without delaying streams: a response is forwarded as it arrives except for a tail
//! that could be the start of a token (the longest suffix of what arrived that is a proper
//! prefix of some literal). Tokens start with distinctive bytes, so that tail is almost always
//! empty, and an SSE event (ending in a line break) is never held.

use aho_corasick::{AhoCorasick, MatchKind};
use dlp_rules::{KnownSecret, MIN_KNOWN_SECRET_LEN};

/// Exact-match search for the proxy's own tokens in response bytes.
pub struct Reflection {
    ac: AhoCorasick,
    /// Pattern index → the secret's id (its env var or file name, never its value).
    ids: Vec<String>,
    literals: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Reflection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflection")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

impl Reflection {
    /// `None` without secrets (or when none is long enough to match exactly).
    pub fn new(secrets: &[KnownSecret]) -> Option<Reflection> {
        let mut ids = Vec::new();
        let mut literals = Vec::new();
        for secret in secrets {
            for lit in secret.encodings() {
                if lit.len() >= MIN_KNOWN_SECRET_LEN {
                    ids.push(secret.id.clone());
                    literals.push(lit);
                }
            }
        }
        if literals.is_empty() {
            return None;
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&literals)
            .ok()?;
        Some(Reflection { ac, ids, literals })
    }

    /// The id of a secret found in `hay`.
    pub fn find(&self, hay: &[u8]) -> Option<&str> {
        let m = self.ac.find(hay)?;
        self.ids.get(m.pattern().as_usize()).map(String::as_str)
    }

    /// How many bytes at the end of `hay` could begin a literal (and must wait for the next
    /// piece): the longest suffix that is a proper prefix of one.
    pub fn pending(&self, hay: &[u8]) -> usize {
        let mut longest = 0;
        for lit in &self.literals {
            let reach = (lit.len() - 1).min(hay.len());
            let tail = &hay[hay.len() - reach..];
            // The earliest start in the tail that fits gives the longest suffix for this literal.
            for at in memchr::memchr_iter(lit[0], tail) {
                let suffix = &tail[at..];
                if suffix.len() <= longest {
                    break;
                }
                if lit.starts_with(suffix) {
                    longest = suffix.len();
                    break;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlp_rules::SecretString;

    const TOKEN: &str = "sk-ant-api03-reflected-Zq8vL2pR7x";

    fn reflection() -> Reflection {
        Reflection::new(&[KnownSecret::new("ANTHROPIC", SecretString::from(TOKEN))])
            .expect("a matcher")
    }

    #[test]
    fn finds_the_token_raw_and_encoded_and_names_it_by_id() {
        let r = reflection();
        let headers = format!("{{\"headers\":{{\"Authorization\":\"Bearer {TOKEN}\"}}}}");
        assert_eq!(r.find(headers.as_bytes()), Some("ANTHROPIC"));
        let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.find(hex.as_bytes()), Some("ANTHROPIC"));
        assert_eq!(r.find(b"data: {\"type\":\"ping\"}\n\n"), None);
        assert!(format!("{r:?}").contains("ANTHROPIC") && !format!("{r:?}").contains(TOKEN));
    }

    #[test]
    fn holds_exactly_a_tail_that_could_start_the_token() {
        let r = reflection();
        assert_eq!(
            r.pending(b"event: done\n\n"),
            0,
            "an SSE event is never held"
        );
        assert_eq!(r.pending(b"..."), 0);
        assert_eq!(r.pending(b"key: sk-ant-api0"), "sk-ant-api0".len());
        assert_eq!(r.pending(b"tasks"), 1, "'s' may begin the token");
        let whole = TOKEN.as_bytes();
        for cut in 1..whole.len() {
            let mut hay = b"prefix ".to_vec();
            hay.extend_from_slice(&whole[..cut]);
            assert!(
                r.pending(&hay) >= cut,
                "a token cut after {cut} bytes must be held"
            );
        }
    }

    #[test]
    fn no_secrets_no_matcher() {
        assert!(Reflection::new(&[]).is_none());
        assert!(Reflection::new(&[KnownSecret::new("SHORT", SecretString::from("abc"))]).is_none());
    }
}
