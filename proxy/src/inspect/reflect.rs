//! The other way a credential reaches the agent: back from the upstream. The agent never holds
//! a real token, the proxy adds it on the way out; but an upstream may hand it back (a debug
//! endpoint that echoes the request, httpbin's `/anything`, an error body quoting the key).
//! Once the agent holds it, it can carry it out in a shape no pattern engine recognises
//! (reversed, split). So the responses to exchanges the proxy added a credential to are checked
//! for the proxy's own tokens, in the encodings DLP matches them in, and cut on a hit.
//!
//! Streaming without stalling streams: bytes are forwarded as they arrive, except a tail of at
//! least `MIN_HELD` bytes that could be the start of a token (the longest suffix that is a
//! proper prefix of some literal). Shorter tails go out at once: the bytes already sent are kept
//! as lookbehind, so a token they begin is still found when the rest arrives, and cut, with at
//! most `MIN_HELD - 1` of its bytes delivered. A held tail of four specific bytes is rare in any
//! stream, so a response that pauses mid-stream (gRPC, a ping-pong protocol) is not stalled.

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::{Bytes, BytesMut};
use dlp_rules::{KnownSecret, MIN_KNOWN_SECRET_LEN};

/// Shortest token prefix held back; fewer bytes of a token reveal nothing of it.
pub const MIN_HELD: usize = 4;

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
        // As DLP does: a secret this short could not be matched without false hits.
        for secret in secrets
            .iter()
            .filter(|s| s.value_len() >= MIN_KNOWN_SECRET_LEN)
        {
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

    /// The longest literal: how much already-sent lookbehind a stream keeps.
    fn longest(&self) -> usize {
        self.literals.iter().map(Vec::len).max().unwrap_or(0)
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

/// One stream's check: what was sent (lookbehind) and what is held.
#[derive(Debug)]
pub struct ReflectStream {
    reflection: std::sync::Arc<Reflection>,
    /// The last bytes sent (at most the longest literal), then the held tail.
    window: BytesMut,
    held: usize,
}

impl ReflectStream {
    pub fn new(reflection: std::sync::Arc<Reflection>) -> ReflectStream {
        ReflectStream {
            reflection,
            window: BytesMut::new(),
            held: 0,
        }
    }

    /// Takes the next bytes; returns those that may be sent now, or the id of the token found.
    pub fn push(&mut self, data: &[u8]) -> Result<Bytes, String> {
        let sent_before = self.window.len() - self.held;
        self.window.extend_from_slice(data);
        if let Some(id) = self.reflection.find(&self.window) {
            return Err(id.to_owned());
        }
        // A token prefix may begin in bytes already sent (fewer than MIN_HELD of them).
        let pending = self.reflection.pending(&self.window);
        let unsent = &self.window[sent_before..];
        let keep = if pending >= MIN_HELD {
            pending.min(unsent.len())
        } else {
            0
        };
        let send = Bytes::copy_from_slice(&unsent[..unsent.len() - keep]);
        self.held = keep;
        // Keep only as much sent lookbehind as a token could straddle.
        let excess = (self.window.len() - self.held).saturating_sub(self.reflection.longest());
        let _ = self.window.split_to(excess);
        Ok(send)
    }

    /// The end of the stream: the held tail never completed a token.
    pub fn finish(&mut self) -> Bytes {
        let at = self.window.len() - self.held;
        self.held = 0;
        self.window.split_off(at).freeze()
    }

    /// Whether bytes are held back.
    pub fn holding(&self) -> bool {
        self.held > 0
    }

    pub fn reflection(&self) -> &Reflection {
        &self.reflection
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

    /// Feeds `pieces`; returns what was sent and whether a token was found.
    fn stream(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut s = ReflectStream::new(std::sync::Arc::new(reflection()));
        let mut sent = Vec::new();
        for p in pieces {
            match s.push(p) {
                Ok(b) => sent.extend_from_slice(&b),
                Err(_) => return (sent, true),
            }
        }
        sent.extend_from_slice(&s.finish());
        (sent, false)
    }

    #[test]
    fn a_token_split_anywhere_is_found_with_at_most_three_of_its_bytes_sent() {
        let body = format!("{{\"echo\":\"Bearer {TOKEN}\",\"n\":1}}");
        let bytes = body.as_bytes();
        let at = body.find(TOKEN).unwrap_or_default();
        for cut in 0..=bytes.len() {
            let (sent, found) = stream(&[&bytes[..cut], &bytes[cut..]]);
            assert!(found, "split at {cut}");
            assert!(
                sent.len() < at + MIN_HELD,
                "split at {cut}: {} bytes sent",
                sent.len()
            );
        }
        // Byte by byte too.
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        let (sent, found) = stream(&pieces);
        assert!(found);
        assert!(sent.len() < at + MIN_HELD);
    }

    #[test]
    fn clean_streams_pass_whole_and_short_tails_are_not_held() {
        let text = b"data: {\"delta\":\"the tasks\"}\n\ndata: [DONE]\n\n";
        for cut in 0..=text.len() {
            let (sent, found) = stream(&[&text[..cut], &text[cut..]]);
            assert!(!found);
            assert_eq!(sent, text, "split at {cut}");
        }
        let mut s = ReflectStream::new(std::sync::Arc::new(reflection()));
        assert_eq!(
            &s.push(b"tasks").unwrap()[..],
            b"tasks",
            "one byte of a prefix goes out"
        );
        assert!(!s.holding());
        assert_eq!(
            &s.push(b" sk-ant").unwrap()[..],
            b" ",
            "four or more are held"
        );
        assert!(s.holding());
        assert_eq!(&s.push(b"hill").unwrap()[..], b"sk-anthill");
    }

    #[test]
    fn no_secrets_no_matcher() {
        assert!(Reflection::new(&[]).is_none());
        assert!(Reflection::new(&[KnownSecret::new("SHORT", SecretString::from("abc"))]).is_none());
    }
}
