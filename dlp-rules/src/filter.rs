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

/// Shortest text segment of a decoded payload worth scanning: no embedded rule matches fewer
/// bytes, nor does a known secret (`MIN_KNOWN_SECRET_LEN`); an engine holding a rule that can
/// is built without the text shortcuts (`Engine::text_only`).
pub(crate) const MIN_TEXT_RUN: usize = 8;

/// Calls `f(start, end)` for every maximal run of text bytes (printable ASCII, tab, CR, LF: see
/// `vector::text_scalar`) at least `MIN_TEXT_RUN` long, in order. Decoded payloads are scanned
/// only there, so random bytes (an image decoded at four alignments) cost a bitmask per 64 bytes
/// instead of a full scan: a block is walked bit by bit only where it holds a long run.
pub(crate) fn text_segments(s: &[u8], mut f: impl FnMut(usize, usize)) {
    // Start of the run that reached the end of the previous block, if any.
    let mut open: Option<usize> = None;
    for pos in (0..s.len()).step_by(BLOCK) {
        // Bits past the end are clear.
        let mut m = vector::mask_from(s, pos, vector::text_mask);
        if let Some(start) = open {
            let t = m.trailing_ones() as usize;
            if t == BLOCK {
                continue;
            }
            if pos + t - start >= MIN_TEXT_RUN {
                f(start, pos + t);
            }
            open = None;
            m &= u64::MAX << t;
        }
        // The run touching the top bit continues into the next block; the others end here.
        let top = m.leading_ones() as usize;
        let inner = if top == 0 {
            m
        } else {
            m & !(u64::MAX << (BLOCK - top))
        };
        let mut long = vector::run_starts(inner, MIN_TEXT_RUN as u32);
        while long != 0 {
            let a = long.trailing_zeros() as usize;
            // `inner`'s top bit is clear, so the run ends inside the block.
            let e = a + (inner >> a).trailing_ones() as usize;
            f(pos + a, pos + e);
            long &= u64::MAX << e;
        }
        if top > 0 {
            open = Some(pos + BLOCK - top);
        }
    }
    if let Some(start) = open {
        if s.len() - start >= MIN_TEXT_RUN {
            f(start, s.len());
        }
    }
}

/// Whether `s` has a text segment (the reference the character-level shortcuts
/// `base64::may_be_text` and `hex::may_be_text` are tested against).
#[cfg(test)]
pub(crate) fn has_text_run(s: &[u8]) -> bool {
    let mut any = false;
    text_segments(s, |_, _| any = true);
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_segments_match_a_bytewise_walk() {
        let naive = |s: &[u8]| {
            let mut out = Vec::new();
            let mut start = None;
            for (i, &b) in s.iter().chain([0u8].iter()).enumerate() {
                match (vector::text_scalar(b) && i < s.len(), start) {
                    (true, None) => start = Some(i),
                    (false, Some(a)) => {
                        if i - a >= MIN_TEXT_RUN {
                            out.push((a, i));
                        }
                        start = None;
                    }
                    _ => {}
                }
            }
            out
        };
        let mut rng = crate::testgen::Lcg::new(5);
        for case in 0..6000usize {
            let s = rng.sparse(
                case % 400,
                1 + case as u64 % 13,
                b"\x80\xa7\xc3\xe2\xff\x00\x1b",
                b"a ~\t\n\r0Z",
            );
            let mut got = Vec::new();
            text_segments(&s, |a, b| got.push((a, b)));
            assert_eq!(got, naive(&s), "case {case}: {s:?}");
        }
        // Runs that fill whole blocks, end exactly at a block edge or at the end.
        for len in [63usize, 64, 65, 127, 128, 129, 200] {
            for cut in [0usize, 7, 8, 56, 57, 63, 64, 65] {
                let mut s = vec![b'a'; len];
                if cut < len {
                    s[cut] = 0;
                }
                let mut got = Vec::new();
                text_segments(&s, |a, b| got.push((a, b)));
                assert_eq!(got, naive(&s), "len {len} cut {cut}");
            }
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
