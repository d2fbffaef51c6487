//! Hex runs (`deadbeef...`): decoded at both nibble alignments, because a run may start with
//! one stray hex digit glued to it.

use super::escape::hexval;
use crate::filter::MIN_TEXT_RUN;
use crate::vector::{self, Within, BLOCK};

const _: () = assert!(MIN_TEXT_RUN.is_power_of_two() && TEXT_SPAN <= BLOCK / 2);

/// Shortest hex run worth decoding (16 bytes of payload).
pub(crate) const MIN_HEX: usize = 32;

/// Maximal runs of hex digits of at least `MIN_HEX` chars inside `s`, as `(start, end)`.
/// Found on 64-byte hex masks: most base64 runs (UUIDs, paths, identifiers) are shorter than
/// `MIN_HEX` or mix in non-hex chars every few bytes, where a per-byte walk mispredicts.
pub(crate) fn hex_subruns(s: Within, mut f: impl FnMut(usize, usize)) {
    if s.len() < MIN_HEX {
        return;
    }
    // Length of the hex run ending where the current block starts.
    let mut carry = 0usize;
    for base in (0..s.len()).step_by(BLOCK) {
        // Bits past the end are cleared: a run ends by the end of `s` at the latest.
        let m = s.mask(base, vector::hex_mask) & s.keep(base);
        if m == u64::MAX {
            carry += BLOCK;
            continue;
        }
        // The run the block starts with, joined to the one the previous blocks ended with.
        let lead = m.trailing_ones() as usize;
        if carry + lead >= MIN_HEX {
            f(base - carry, base + lead);
        }
        // Runs starting after it: bits that begin `MIN_HEX` ones in a row (base64 text has hex
        // runs every few chars but almost never one of 32, so this is usually zero).
        let mut starts = vector::run_starts(m, MIN_HEX as u32) & (u64::MAX << lead);
        carry = 0;
        while starts != 0 {
            let start = starts.trailing_zeros() as usize;
            let end = start + (m >> start).trailing_ones() as usize;
            if end >= BLOCK {
                carry = BLOCK - start;
                break;
            }
            f(base + start, base + end);
            starts &= u64::MAX.checked_shl(end as u32).unwrap_or(0);
        }
        if carry == 0 && starts == 0 {
            carry = m.leading_ones() as usize;
        }
    }
    if carry >= MIN_HEX {
        f(s.len() - carry, s.len());
    }
}

/// Hex digits a text run of `MIN_TEXT_RUN` bytes spans (two per byte).
const TEXT_SPAN: usize = 2 * MIN_TEXT_RUN;

/// Bit `align` (0 or 1) set when decoding `s[align..]` could yield `MIN_TEXT_RUN` consecutive
/// text bytes: a text byte's high nibble is 0 (tab/LF/CR) or 2-7, so that many pairs in a row
/// must start with such a digit (and be whole pairs of hex digits). Git ids and digests fail it
/// almost always (7/16 per pair). Both alignments at once, on 64-char masks: a pair at `p` is
/// fine when bit `p` of the nibble mask and bit `p + 1` of the hex mask are set, and
/// `MIN_TEXT_RUN` of them every other bit is three shift-ands. Windows overlap by a span so a
/// run is whole in one of them. A byte-by-byte walk per alignment cost ~480 instructions per
/// git id; git ids are common in agent traffic (`git log`, lock files).
pub(crate) fn text_alignments(s: Within) -> u8 {
    let mut found = 0u8;
    let mut base = 0;
    while base + TEXT_SPAN <= s.len() {
        // Both masks from one block. A pair needs its second digit inside `s`.
        let (nibble, hex) = s.mask(base, |b| (vector::text_nibble_mask(b), vector::hex_mask(b)));
        let ok = nibble & ((hex & s.keep(base)) >> 1);
        // Bit p: pairs p, p + 2, .., p + 2 * (MIN_TEXT_RUN - 1) all fine.
        let mut r = ok;
        let mut len = 1;
        while len < MIN_TEXT_RUN {
            r &= r >> (2 * len);
            len *= 2;
        }
        // `base` is even, so bit parity is the alignment.
        found |= u8::from(r & 0x5555_5555_5555_5555 != 0)
            | u8::from(r & 0xAAAA_AAAA_AAAA_AAAA != 0) << 1;
        if found == 3 {
            break;
        }
        base += BLOCK - TEXT_SPAN;
    }
    found
}

/// `text_alignments`'s definition, pair by pair (the tests' reference).
#[cfg(test)]
pub(crate) fn may_be_text(s: &[u8], align: usize) -> bool {
    let mut in_row = 0;
    for pair in s.get(align..).unwrap_or(&[]).chunks_exact(2) {
        // Branch-free, as for base64: the pairs of a digest pass or fail at random.
        let ok = TEXT_HIGH[usize::from(pair[0])] & u8::from(hexval(pair[1]).is_some());
        in_row = (in_row + 1) * usize::from(ok);
        if in_row >= MIN_TEXT_RUN {
            return true;
        }
    }
    false
}

/// 1 for the hex digits a text byte's high nibble can be (0, 2-7), else 0 (the reference's table;
/// `vector::text_nibble_mask` is the scan's).
#[cfg(test)]
static TEXT_HIGH: [u8; 256] = {
    let mut t = [0u8; 256];
    let digits = *b"0234567";
    let mut i = 0;
    while i < digits.len() {
        t[digits[i] as usize] = 1;
        i += 1;
    }
    t
};

/// Decodes hex digits `s[align..]` (pairs) into `out`.
pub(crate) fn decode(s: &[u8], align: usize, out: &mut Vec<u8>) {
    out.clear();
    let s = s.get(align..).unwrap_or(&[]);
    for pair in s.chunks_exact(2) {
        if let (Some(h), Some(l)) = (hexval(pair[0]), hexval(pair[1])) {
            out.push(h << 4 | l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn may_be_text_never_rejects_a_decoding_with_text() {
        let mut rng = crate::testgen::Lcg::new(9);
        let mut dec = Vec::new();
        let mut rejected = 0;
        for case in 0..20_000usize {
            let s: Vec<u8> = if case % 3 == 0 {
                let text = &b"password=hunter2hunter2"[..8 + case % 15];
                let mut h: String = (0..case % 3).map(|_| 'f').collect();
                h.extend(text.iter().map(|b| format!("{b:02x}")));
                h.into_bytes()
            } else {
                (0..32 + case % 40)
                    .map(|_| rng.pick(b"0123456789abcdefABCDEF"))
                    .collect()
            };
            for align in 0..2 {
                decode(&s, align, &mut dec);
                if !may_be_text(&s, align) {
                    assert!(!crate::filter::has_text_run(&dec), "{s:?} {align}");
                    rejected += 1;
                }
            }
        }
        assert!(rejected > 20_000, "{rejected}");
    }

    /// The masked version against the pair-by-pair definition, at every length and offset a
    /// window boundary can cut (runs of text-nibble pairs are made common on purpose).
    #[test]
    fn text_alignments_match_the_pairwise_walk() {
        let mut rng = crate::testgen::Lcg::new(5);
        let mut seen = [0usize; 4];
        for case in 0..30_000usize {
            let len = case % 230;
            let s: Vec<u8> = (0..len)
                .map(|_| rng.pick(b"02345672345670234567023456789abcdefz"))
                .collect();
            let want = u8::from(may_be_text(&s, 0)) | u8::from(may_be_text(&s, 1)) << 1;
            assert_eq!(
                text_alignments(Within::whole(&s)),
                want,
                "{}",
                String::from_utf8_lossy(&s)
            );
            // Followed in memory by more text-nibble pairs, which must not count.
            let more = [&s[..], b"3232323232323232323232323232323232"].concat();
            assert_eq!(text_alignments(Within::new(&more, len)), want, "{case}");
            seen[usize::from(want)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 1000), "{seen:?}");
    }

    #[test]
    fn subruns_match_a_bytewise_walk() {
        let naive = |s: &[u8]| {
            let mut v = Vec::new();
            let mut i = 0;
            while i < s.len() {
                let a = i;
                while i < s.len() && hexval(s[i]).is_some() {
                    i += 1;
                }
                if i - a >= MIN_HEX {
                    v.push((a, i));
                }
                i = i.max(a + 1);
            }
            v
        };
        let mut rng = crate::testgen::Lcg::new(1);
        for case in 0..5000usize {
            let s = rng.sparse(
                case % 300,
                2 + case as u64 % 70,
                b"xZ-_/+g",
                b"0123456789abcdefABCDEF",
            );
            let mut got = Vec::new();
            hex_subruns(Within::whole(&s), |a, b| got.push((a, b)));
            assert_eq!(got, naive(&s), "case {case}");
            // Followed in memory by hex digits, which must not extend the last run.
            let more = [&s[..], &[b'a'; 100]].concat();
            got.clear();
            hex_subruns(Within::new(&more, s.len()), |a, b| got.push((a, b)));
            assert_eq!(got, naive(&s), "case {case}, hex after");
        }
    }

    #[test]
    fn both_alignments() {
        let mut out = Vec::new();
        decode(b"414243", 0, &mut out);
        assert_eq!(out, b"ABC");
        decode(b"f414243", 1, &mut out);
        assert_eq!(out, b"ABC");
        let mut runs = Vec::new();
        hex_subruns(
            Within::whole(b"zz0123456789abcdef0123456789abcdef0z12"),
            |a, b| runs.push((a, b)),
        );
        assert_eq!(runs, vec![(2, 35)]);
    }
}
