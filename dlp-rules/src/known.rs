//! Known secrets (issue 4): the exact credential values the proxy itself holds, matched as
//! literals in the prefilter, raw and in the encodings a client could wrap them in.
//! Percent and JSON escapes need no literal: the escape layer decodes them back to raw.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Shorter values would match ordinary text; they are skipped (see `Engine::with_known_secrets`).
pub const MIN_KNOWN_SECRET_LEN: usize = 8;

/// A credential value to block verbatim, named by a non-secret id (e.g. its env var name).
#[derive(Clone)]
pub struct KnownSecret {
    pub id: String,
    pub value: SecretString,
}

impl KnownSecret {
    pub fn new(id: impl Into<String>, value: SecretString) -> KnownSecret {
        KnownSecret {
            id: id.into(),
            value,
        }
    }

    /// The literals that reveal this secret (see `encodings`); what other exact-match guards
    /// (the proxy's check of responses for its own credentials) look for too.
    pub fn encodings(&self) -> Vec<Vec<u8>> {
        encodings(self)
    }

    /// Length of the value in bytes (the value itself stays wrapped).
    pub fn value_len(&self) -> usize {
        self.value.expose_secret().len()
    }
}

impl std::fmt::Debug for KnownSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownSecret")
            .field("id", &self.id)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

/// The literals that reveal `secret`: itself; base64 and base64url at the three byte offsets it
/// can take inside a longer encoded payload (only the characters that do not depend on the
/// neighbouring bytes); lower- and upper-case hex.
pub(crate) fn encodings(secret: &KnownSecret) -> Vec<Vec<u8>> {
    let raw = secret.value.expose_secret().as_bytes();
    let mut out = vec![raw.to_vec()];
    for engine in [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for k in 0..3usize {
            let mut buf = vec![0u8; k];
            buf.extend_from_slice(raw);
            let enc = engine.encode(&buf);
            let from = (8 * k).div_ceil(6);
            let to = 8 * (k + raw.len()) / 6;
            if let Some(stable) = enc.as_bytes().get(from..to) {
                if stable.len() >= MIN_KNOWN_SECRET_LEN {
                    out.push(stable.to_vec());
                }
            }
        }
    }
    let hex_lower: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex_lower.to_ascii_uppercase().into_bytes());
    out.push(hex_lower.into_bytes());
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_offsets_are_substrings_of_real_encodings() {
        let s = KnownSecret::new("T", SecretString::from("s3cr3t-value-123"));
        let lits = encodings(&s);
        for prefix in ["", "a", "ab", "abc", "{\"k\":1}"] {
            let payload = format!("{prefix}s3cr3t-value-123 trailing");
            let enc = base64::engine::general_purpose::STANDARD.encode(payload);
            assert!(
                lits.iter()
                    .any(|l| enc.as_bytes().windows(l.len()).any(|w| w == l.as_slice())),
                "{prefix}"
            );
        }
        let hex: String = "s3cr3t-value-123"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(lits.contains(&hex.into_bytes()));
        assert!(format!("{s:?}").contains("REDACTED"));
    }
}
