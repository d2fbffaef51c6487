//! Shared false-positive filters applied to every regex rule's secret: entropy (scaled to the
//! secret's length) and placeholders. Known-secret matches bypass these: they are exact.

use crate::vector::{self, BLOCK};

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The pack's threshold applies as written: rule authors know their token's length and alphabet.
pub(crate) fn passes_entropy(secret: &[u8], min: f64) -> bool {
    entropy(secret) >= min
}

/// Credentials published in vendor docs for local emulators; they unlock nothing real.
const PUBLIC_VALUES: &[&[u8]] = &[
    // Azurite / Azure Storage Emulator account key for `devstoreaccount1`.
    b"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
];

/// Placeholders and documentation values (`xxxx`, `${VAR}`, `<YOUR_KEY>`, `...EXAMPLE`), and
/// strings made of one repeated byte. Random tokens contain none of these markers with any
/// practical probability (a 4-char marker in a 40-char base62 token: ~1e-5).
pub(crate) fn is_placeholder(secret: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[
        b"example",
        b"xxxx",
        b"your_",
        b"your-",
        b"yourkey",
        b"yourtoken",
        b"yoursecret",
        b"${",
        b"{{",
        b"placeholder",
        b"redacted",
        b"changeme",
        b"dummy",
        b"****",
        b"\xe2\x80\xa6",
        b"...",
        b"insert",
        b"abcdefgh",
        b"12345678",
    ];
    if secret.is_empty() {
        return true;
    }
    if PUBLIC_VALUES.iter().any(|p| {
        memchr::memmem::find(secret, p).is_some()
            || (secret.len() >= 16 && memchr::memmem::find(p, secret).is_some())
    }) {
        return true;
    }
    let lower: Vec<u8> = secret.iter().map(u8::to_ascii_lowercase).collect();
    if MARKERS
        .iter()
        .any(|m| memchr::memmem::find(&lower, m).is_some())
    {
        return true;
    }
    // `<YOUR_KEY>`-style angle-bracket placeholders.
    if let Some(lt) = memchr::memchr(b'<', secret) {
        if memchr::memchr(b'>', &secret[lt..]).is_some() {
            return true;
        }
    }
    // Long runs of one byte (`AAAAAAAA`, `00000000`).
    let mut run = 1usize;
    for w in secret.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 8 {
            return true;
        }
    }
    false
}

/// Shortest printable run that every match contains (keyword plus token, or a known secret,
/// which is at least `MIN_KNOWN_SECRET_LEN` long).
pub(crate) const MIN_TEXT_RUN: usize = 8;

/// Whether `s` has `MIN_TEXT_RUN` consecutive printable ASCII bytes (space..`~`, tab, CR, LF).
/// Asked of every decoding of every base64/hex run (thousands per MiB of code-heavy JSON), so it
/// tests 64 bytes at a time on a text bitmask: 8 set bits in a row inside a block, or the set
/// bits a block starts with added to those the previous block ended with.
pub(crate) fn has_text_run(s: &[u8]) -> bool {
    let mut carry = 0usize;
    for pos in (0..s.len()).step_by(BLOCK) {
        // Bits past the end are clear.
        let m = vector::mask_from(s, pos, vector::text_mask);
        if vector::run_starts(m, MIN_TEXT_RUN as u32) != 0
            || carry + m.trailing_ones() as usize >= MIN_TEXT_RUN
        {
            return true;
        }
        carry = if m == u64::MAX {
            carry + BLOCK
        } else {
            m.leading_ones() as usize
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_runs_match_a_bytewise_count() {
        let naive = |s: &[u8]| {
            let mut run = 0;
            s.iter().any(|&b| {
                run = if vector::text_scalar(b) { run + 1 } else { 0 };
                run >= MIN_TEXT_RUN
            })
        };
        let mut rng = crate::testgen::Lcg::new(3);
        for case in 0..4000usize {
            let s = rng.sparse(
                case % 300,
                2 + case as u64 % 9,
                b"\x80\xa7\xc3\xe2\xff",
                b"a ~\t\n\r0Z",
            );
            assert_eq!(has_text_run(&s), naive(&s), "case {case}: {s:?}");
        }
    }

    #[test]
    fn entropy_values() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!(passes_entropy(b"Zx8kQ2pL9mN4vB7c", 3.9));
        assert!(!passes_entropy(b"password", 3.0));
    }

    #[test]
    fn placeholders() {
        for p in [
            "AKIAIOSFODNN7EXAMPLE",
            "sk-ant-xxxxxxxx",
            "${OPENAI_API_KEY}",
            "<YOUR_KEY>",
            "your_token_here",
            "ghp_000000000000000000000000000000000000",
            "{{ secret }}",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        for real in [
            "ghp_4Rb1yQ8wLx2ZkP0sTnV7cF3hJ9mD6eGa5uWi",
            "AKIA2E0A8F3B244C9986",
        ] {
            assert!(!is_placeholder(real.as_bytes()), "{real}");
        }
    }
}
