//! Known secrets in the bytes the escape layer rewrote.
//!
//! The escape layer's output replaces the raw view, and the known-secret literals are matched
//! there with everything else. What decoding can destroy is a literal that the raw bytes carry
//! and the decoded bytes do not: `\u0041BCD…` holds the hex literal `0041BCD…`, which decodes to
//! `ABCD…`. When no literal holds an escape starter (`\`, `%`, and `+` in a form), that is the
//! only way: an escape that overlaps an occurrence must start before it (its starter is not in
//! the literal), so the occurrence **starts inside an escape, after its starter**; an
//! occurrence that no escape overlaps is copied into the decoded view unchanged and found there.
//! So only the few positions inside each escape need a look, instead of a second literal pass
//! over the whole raw view (that pass was 11 % of a JSON scan with three known secrets). A
//! literal set that holds a starter falls back to the full pass.

use super::Hit;
use crate::decode::{escape, PosMap};
use crate::finding;
use crate::prefilter::{Prefilter, Target};

/// The known-secret literals, prepared for the raw side of the escape layer. No `Debug`: it
/// holds the secrets' values.
pub(crate) struct RawKnown {
    /// Every literal, for the full pass over raw bytes.
    teddy: Prefilter,
    /// The literals and their targets, for the checks at escape positions.
    lits: Vec<(Vec<u8>, Target)>,
    /// Bit `pair(b0, b1)` is set when some literal starts with bytes `b0 b1`: most escape
    /// positions cost one load and a test.
    starts: Box<[u64; 1024]>,
    /// Some literal holds `\` or `%` (or is too short for `starts`): every raw view needs the
    /// full pass.
    escape_starter: bool,
    /// Some literal holds `+`: forms (where `+` decodes to a space) need the full pass.
    plus: bool,
}

impl RawKnown {
    pub(crate) fn new(lits: Vec<(Vec<u8>, Target)>) -> Result<RawKnown, crate::DlpError> {
        let mut starts = Box::new([0u64; 1024]);
        let mut short = false;
        for (l, _) in &lits {
            match l[..] {
                [b0, b1, ..] => {
                    let i = pair(b0, b1);
                    starts[i >> 6] |= 1 << (i & 63);
                }
                // Never the case (known secrets are >= 8 bytes), but never skipped either.
                _ => short = true,
            }
        }
        let has = |c: u8| lits.iter().any(|(l, _)| l.contains(&c));
        Ok(RawKnown {
            escape_starter: short || has(b'\\') || has(b'%'),
            plus: has(b'+'),
            teddy: Prefilter::build_teddy(lits.clone())?,
            starts,
            lits,
        })
    }

    /// Known-secret occurrences in `raw` that its decoded view (`map` maps the view back to
    /// `raw`) may lack, in `raw` coordinates. Occurrences the view also holds may be reported
    /// too; the caller deduplicates.
    pub(crate) fn hits(&self, raw: &[u8], form: bool, map: &PosMap, out: &mut Vec<Hit>) {
        if self.escape_starter || (form && self.plus) {
            self.full_pass(raw, out);
        } else {
            self.at_escapes(raw, map, out);
        }
    }

    /// The reference: every occurrence in `raw`.
    pub(crate) fn full_pass(&self, raw: &[u8], out: &mut Vec<Hit>) {
        self.teddy.for_each_hit(raw, |s, e, targets| {
            for t in targets {
                out.push(hit(raw, s, e, *t));
            }
        });
    }

    /// Occurrences that start inside an escape, after its starter.
    fn at_escapes(&self, raw: &[u8], map: &PosMap, out: &mut Vec<Hit>) {
        for w in map.points().windows(2) {
            // The escape ends at the second checkpoint; its starter lies no earlier than `first`
            // (exactly there for the two-byte JSON escapes, the common case).
            let first = escape::escape_start(w[0], w[1]);
            for s in first + 1..w[1].1 as usize {
                let Some(&[b0, b1]) = raw.get(s..s + 2) else {
                    break;
                };
                let i = pair(b0, b1);
                if self.starts[i >> 6] & (1 << (i & 63)) == 0 {
                    continue;
                }
                for (l, t) in &self.lits {
                    if raw[s..].starts_with(l) {
                        out.push(hit(raw, s, s + l.len(), *t));
                    }
                }
            }
        }
    }
}

/// Bit index of a literal's first two bytes in `starts`.
fn pair(b0: u8, b1: u8) -> usize {
    usize::from(b1) << 8 | usize::from(b0)
}

/// A known secret's literal found at `view[start..end]`, unlabelled.
pub(super) fn hit(view: &[u8], start: usize, end: usize, target: Target) -> Hit {
    Hit {
        target,
        start,
        end,
        preview: finding::preview(&view[start..end], &[]),
        encoding: String::new(),
        validated: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::known::{encodings, KnownSecret};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Literals of two secrets, as the engine builds them: one starts with `n` (so `\` glued in
    /// front makes a `\n` escape), and every hex/base64 encoding starts with characters that
    /// `%`, `\x` and `\u00` escapes consume.
    fn literals(extra: &str) -> Vec<(Vec<u8>, Target)> {
        let mut out = Vec::new();
        for (i, v) in ["nTok3n-Injected-9f8e", "b7Ab-Secret/42+x", extra]
            .iter()
            .enumerate()
        {
            let s = KnownSecret::new("K", secrecy::SecretString::from(*v));
            out.extend(
                encodings(&s)
                    .into_iter()
                    .map(|l| (l, Target::Known(i as u32))),
            );
        }
        out
    }

    /// Pieces the generator glues together: literals whole and cut, every escape kind (valid,
    /// truncated, invalid), and escape starters glued in front of literals.
    fn pieces(lits: &[(Vec<u8>, Target)]) -> Vec<Vec<u8>> {
        let mut p: Vec<Vec<u8>> = [
            "\\n",
            "\\\"",
            "\\\\",
            "\\/",
            "\\u0041",
            "\\u00e9",
            "\\uD83D\\uDE00",
            "\\uD83D",
            "\\u12",
            "\\x41",
            "\\q",
            "%41",
            "%4",
            "%zz",
            "%",
            "\\",
            "+",
            "\\u00",
            "\\x",
            "\\u",
            "4",
            "6e",
            "a",
            " ",
            "\"",
            "x",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        for (l, _) in lits {
            p.push(l.clone());
            p.push(l[..l.len() / 2].to_vec());
            p.push(l[l.len() / 2..].to_vec());
            for pre in ["\\", "%", "\\x", "\\u00", "\\u", "%4"] {
                let mut g = pre.as_bytes().to_vec();
                g.extend_from_slice(l);
                p.push(g);
            }
        }
        p
    }

    type Set = BTreeSet<(Target, usize, usize)>;

    fn set(hits: &[Hit]) -> Set {
        hits.iter().map(|h| (h.target, h.start, h.end)).collect()
    }

    /// What the scan sees of `raw` through the decoded view: every literal there, mapped back.
    fn view_hits(rk: &RawKnown, raw: &[u8], form: bool) -> (Set, PosMap) {
        let (mut view, mut map) = (Vec::new(), PosMap::default());
        escape::normalize(raw, form, &mut view, &mut map);
        let mut hits = Vec::new();
        rk.full_pass(&view, &mut hits);
        let mapped = hits
            .iter()
            .map(|h| (h.target, map.map(h.start), map.map(h.end)))
            .collect();
        (mapped, map)
    }

    /// Returns how many occurrences only the raw bytes hold (so a test can check the generator
    /// reaches the case that matters).
    fn check(rk: &RawKnown, raw: &[u8], form: bool) -> usize {
        let (seen, map) = view_hits(rk, raw, form);
        let mut full = Vec::new();
        rk.full_pass(raw, &mut full);
        let mut fast = Vec::new();
        rk.hits(raw, form, &map, &mut fast);
        let full = set(&full);
        let want: Set = seen.union(&full).cloned().collect();
        let got: Set = seen.union(&set(&fast)).cloned().collect();
        assert_eq!(got, want, "{:?} form={form}", String::from_utf8_lossy(raw));
        full.difference(&seen).count()
    }

    fn build(pieces: &[Vec<u8>], picks: &[usize]) -> Vec<u8> {
        picks
            .iter()
            .flat_map(|&i| pieces[i % pieces.len()].iter().copied())
            .collect()
    }

    #[test]
    fn escape_positions_find_what_the_full_pass_finds() {
        let rk = RawKnown::new(literals("Plain-Third-Secret")).unwrap();
        assert!(!rk.escape_starter && rk.plus, "the set under test");
        let ps = pieces(&rk.lits);
        let mut hidden = 0;
        // splitmix64: a fixed sequence, so the count below is stable.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as usize
        };
        for _ in 0..3000 {
            let n = 1 + next() % 11;
            let picks: Vec<usize> = (0..n).map(|_| next()).collect();
            let raw = build(&ps, &picks);
            hidden += check(&rk, &raw, false);
            check(&rk, &raw, true);
        }
        assert!(hidden > 500, "only {hidden} occurrences hidden by escapes");
    }

    proptest! {
        #[test]
        fn escape_positions_any_gluing(picks in prop::collection::vec(any::<usize>(), 1..16)) {
            let rk = RawKnown::new(literals("Plain-Third-Secret")).unwrap();
            let raw = build(&pieces(&rk.lits), &picks);
            check(&rk, &raw, false);
            check(&rk, &raw, true);
        }
    }

    #[test]
    fn a_literal_holding_a_starter_takes_the_full_pass() {
        let rk = RawKnown::new(literals("has%percent\\slash")).unwrap();
        assert!(rk.escape_starter);
        let ps = pieces(&rk.lits);
        for i in 0..ps.len() {
            for j in 0..ps.len() {
                let raw = build(&ps, &[i, j]);
                check(&rk, &raw, false);
            }
        }
    }
}
