//! Built-in validators. A validator can only raise confidence in a finding: a correctly shaped
//! prefixed token is a leak whether or not its checksum is right (attackers can mangle checksums,
//! and vendors change formats), so validation never vetoes.

use base64::Engine as _;

/// Names a pack may put in `validator = "..."`.
pub const VALIDATORS: &[&str] = &["crc32-github", "crc32-npm", "jwt"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Validator {
    None,
    /// `<prefix>_` + 30 base62 chars + 6 base62 chars of CRC32 (GitHub classic and npm tokens).
    Crc32Base62,
    /// Three base64url segments whose header decodes to a JSON object naming an `alg`.
    Jwt,
    /// Not built in: harmless at run time, flagged by the pack tests.
    Unknown(String),
}

impl Validator {
    pub fn parse(name: Option<&str>) -> Validator {
        match name {
            None => Validator::None,
            Some("crc32-github") | Some("crc32-npm") => Validator::Crc32Base62,
            Some("jwt") => Validator::Jwt,
            Some(other) => Validator::Unknown(other.to_string()),
        }
    }

    /// `Some(true)` when the checksum or structure verifies, `Some(false)` when it does not,
    /// `None` when there is nothing to check.
    pub fn check(&self, secret: &[u8]) -> Option<bool> {
        match self {
            Validator::None | Validator::Unknown(_) => None,
            Validator::Crc32Base62 => Some(crc32_base62_ok(secret)),
            Validator::Jwt => Some(jwt_ok(secret)),
        }
    }
}

fn crc32_base62_ok(secret: &[u8]) -> bool {
    let Some(us) = secret.iter().position(|&b| b == b'_') else {
        return false;
    };
    let rest = &secret[us + 1..];
    if rest.len() != 36 {
        return false;
    }
    let (payload, check) = rest.split_at(30);
    base62_fixed6(crc32(payload)).as_slice() == check
}

fn base62_fixed6(mut n: u32) -> [u8; 6] {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// CRC-32 (IEEE), bitwise: validators run once per finding, so a table buys nothing.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn jwt_ok(secret: &[u8]) -> bool {
    let mut parts = secret.split(|&b| b == b'.');
    let Some(header) = parts.next() else {
        return false;
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(json) = engine.decode(header) else {
        return false;
    };
    let text = String::from_utf8_lossy(&json);
    text.trim_start().starts_with('{') && text.contains("\"alg\"")
}

/// Makes a token that passes `crc32-github`, for tests and docs.
#[doc(hidden)]
pub fn github_token_with_checksum(prefix: &str, payload30: &str) -> String {
    let check = base62_fixed6(crc32(payload30.as_bytes()));
    format!("{prefix}_{payload30}{}", String::from_utf8_lossy(&check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn github_checksum_roundtrip_and_mismatch() {
        let t = github_token_with_checksum("ghp", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123");
        assert_eq!(Validator::Crc32Base62.check(t.as_bytes()), Some(true));
        let mut bad = t.into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(Validator::Crc32Base62.check(&bad), Some(false));
    }

    #[test]
    fn jwt_header_checked() {
        let jwt = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(Validator::Jwt.check(jwt), Some(true));
        assert_eq!(Validator::Jwt.check(b"abc.def.ghi"), Some(false));
        assert_eq!(Validator::parse(Some("nope")).check(b"x"), None);
    }
}
