//! Keyword prefilter, in two parts.
//!
//! Literals of 4+ bytes (nearly all): a stride-2 3-gram filter. Each literal is anchored on two
//! 3-grams an odd distance apart (the pair least common in real text, `anchor.rs`); wherever it
//! occurs, one of them is on an even position, so only even positions are hashed into a 64 KiB byte
//! table (a byte per slot, not a bit: the test is one load instead of a shift-and-mask, which cut
//! the filter's instructions by 40 %; 64 KiB rather than 32: half the slots text grams share with
//! anchors, for 3-9 % on the whole scan, session 16). A set slot is checked against a bucketed
//! anchor table and a full compare. One pass for all literals, whatever their count: measured 10x
//! faster than Teddy on the 244 pack keywords, where Teddy needs one pass per group and slows as
//! groups fill (NOTES.md: SIMD only for leftmost, case-sensitive, <= 64 patterns).
//!
//! Shorter literals (a dozen 3-byte ones such as `://`): aho-corasick Teddy groups of at most 16
//! (slim Teddy), where it is fastest, searched through its packed searcher (`group.rs`).

use crate::error::DlpError;
use crate::vector;

mod anchor;
mod gram_counts;
mod group;

use anchor::anchor_pair;
use group::GroupSearch;

/// Teddy's pattern budget per searcher.
pub(crate) const GROUP_SIZE: usize = 16;
/// Literals at least this long go to the 3-gram filter.
const QGRAM_MIN: usize = 4;
/// Slots in the gram table (one byte each); `slot_of` indexes it without a bounds check.
const SLOTS: usize = 1 << 16;

/// What a literal hit asks to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Target {
    /// Confirm rule `n`'s regex in a window around the hit.
    Rule(u32),
    /// The hit is itself a known secret (exact literal, an encoding of secret `n`).
    Known(u32),
}

#[derive(Debug)]
struct Group {
    search: GroupSearch,
    targets: Vec<Vec<Target>>,
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    groups: Vec<Group>,
    qgram: QGram,
    patterns: usize,
}

/// A literal and what its hits ask to be confirmed.
type Literal = (Vec<u8>, Vec<Target>);

/// Fixed size so indexing by a 16-bit hash needs no bounds check.
type Slots = Box<[u8; SLOTS]>;

/// One literal's anchor gram in the verification table: the literal starts `off` bytes before
/// the gram.
#[derive(Debug, Clone)]
struct Anchor {
    gram: u32,
    off: usize,
    lit: u32,
}

#[derive(Debug)]
struct QGram {
    grams: Slots,
    /// Anchors sorted by `slot_of(gram) >> BUCKET_SHIFT`; `buckets[b]..buckets[b + 1]` is bucket b.
    anchors: Vec<Anchor>,
    buckets: Vec<u32>,
    lits: Vec<Literal>,
}

/// Slots per verification bucket, as a shift: 4 096 buckets (a 16 KiB index built at start-up)
/// for ~500 anchors, so a bucket holds one anchor or none nearly always.
const BUCKET_SHIFT: usize = 4;

/// Table slot of a 3-gram (the low three bytes of `g`); the scan computes the same hash eight
/// grams at a time (`vector::even_gram_hash_words`).
#[inline(always)]
fn slot_of(g: u32) -> usize {
    let [b0, b1, b2, _] = g.to_le_bytes();
    vector::gram_hash(b0, b1, b2) & (SLOTS - 1)
}

fn gram(s: &[u8]) -> u32 {
    u32::from_le_bytes([s[0], s[1], s[2], 0])
}

impl QGram {
    /// Each literal (4+ bytes) is anchored on two 3-grams an odd distance apart
    /// (`anchor_pair`): one of them lies on an even position wherever the literal occurs, so
    /// hashing only even positions finds every occurrence.
    fn build(lits: Vec<Literal>) -> QGram {
        let mut grams: Slots = Box::new([0; SLOTS]);
        let mut anchors = Vec::new();
        for (i, (lit, _)) in lits.iter().enumerate() {
            let (j, k) = anchor_pair(lit);
            for off in [j, k] {
                let g = gram(&lit[off..]);
                grams[slot_of(g)] = 1;
                anchors.push(Anchor {
                    gram: g,
                    off,
                    lit: u32::try_from(i).unwrap_or(u32::MAX),
                });
            }
        }
        anchors.sort_by_key(|a| slot_of(a.gram) >> BUCKET_SHIFT);
        let nb = (SLOTS >> BUCKET_SHIFT) + 1;
        let mut buckets = vec![0u32; nb];
        for a in &anchors {
            buckets[(slot_of(a.gram) >> BUCKET_SHIFT) + 1] += 1;
        }
        for k in 1..nb {
            buckets[k] += buckets[k - 1];
        }
        QGram {
            grams,
            anchors,
            buckets,
            lits,
        }
    }

    fn for_each_hit(&self, hay: &[u8], f: &mut impl FnMut(usize, usize, &[Target])) {
        if self.lits.is_empty() || hay.len() < QGRAM_MIN {
            return;
        }
        let n = hay.len();
        let mut i = 0;
        // Eight even-position grams per 16-byte step, hashed together in a vector and tested
        // together; the rare hit re-tests them one by one.
        while let Some(chunk) = hay
            .get(i..i + 18)
            .and_then(|c| <&[u8; 18]>::try_from(c).ok())
        {
            let words = vector::even_gram_hash_words(chunk);
            let slot = |k: usize| vector::gram_of(words, k) & (SLOTS - 1);
            let any = (0..8).fold(0u8, |a, k| a | self.grams[slot(k)]);
            if any != 0 {
                // Which lanes hit, as bits, so the verification loop runs once per hit instead
                // of branching on each of the eight lanes (a mispredicted branch per hit lane
                // cost more than the bits: +2 to +12 % on JSON and code, session 12).
                let mut lanes =
                    (0..8).fold(0u32, |m, k| m | u32::from(self.grams[slot(k)] != 0) << k);
                while lanes != 0 {
                    let k = lanes.trailing_zeros() as usize;
                    lanes &= lanes - 1;
                    let at = i + 2 * k;
                    self.verify(hay, at, gram(&hay[at..]), slot(k), f);
                }
            }
            i += 16;
        }
        while i + 3 <= n {
            let g = gram(&hay[i..]);
            let h = slot_of(g);
            if self.grams[h] != 0 {
                self.verify(hay, i, g, h, f);
            }
            i += 2;
        }
    }

    #[inline]
    fn verify(
        &self,
        hay: &[u8],
        at: usize,
        g: u32,
        h: usize,
        f: &mut impl FnMut(usize, usize, &[Target]),
    ) {
        let b = h >> BUCKET_SHIFT;
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        for a in &self.anchors[lo..hi] {
            if a.gram != g || a.off > at {
                continue;
            }
            let start = at - a.off;
            let (lit, ts) = &self.lits[a.lit as usize];
            if hay[start..].starts_with(lit) {
                f(start, start + lit.len(), ts);
            }
        }
    }
}

impl Prefilter {
    pub fn build(literals: Vec<(Vec<u8>, Target)>) -> Result<Prefilter, DlpError> {
        Prefilter::build_with(literals, QGRAM_MIN)
    }

    /// All literals in Teddy groups: for a handful of long literals (the known secrets' own
    /// filter, run over raw views) Teddy is several times faster than the 3-gram pass.
    pub fn build_teddy(literals: Vec<(Vec<u8>, Target)>) -> Result<Prefilter, DlpError> {
        Prefilter::build_with(literals, usize::MAX)
    }

    fn build_with(
        mut literals: Vec<(Vec<u8>, Target)>,
        qgram_min: usize,
    ) -> Result<Prefilter, DlpError> {
        literals.sort_by(|a, b| {
            b.0.len()
                .cmp(&a.0.len())
                .then_with(|| a.0.cmp(&b.0))
                .then(a.1.cmp(&b.1))
        });
        let mut merged: Vec<(Vec<u8>, Vec<Target>)> = Vec::new();
        for (lit, t) in literals {
            match merged.last_mut() {
                Some((l, ts)) if *l == lit => ts.push(t),
                _ => merged.push((lit, vec![t])),
            }
        }
        let patterns = merged.len();
        let (long, merged): (Vec<_>, Vec<_>) =
            merged.into_iter().partition(|(l, _)| l.len() >= qgram_min);
        let qgram = QGram::build(long);
        let n_groups = merged.len().div_ceil(GROUP_SIZE);
        let mut buckets: Vec<Vec<(Vec<u8>, Vec<Target>)>> =
            (0..n_groups).map(|_| Vec::new()).collect();
        // Round-robin keeps the groups even; longest-first order survives within each group.
        for (i, entry) in merged.into_iter().enumerate() {
            buckets[i % n_groups.max(1)].push(entry);
        }
        let mut groups = Vec::with_capacity(n_groups);
        for bucket in buckets {
            // Leftmost-first reports one pattern per start position (the longest, listed first);
            // a shorter pattern that is its prefix would be shadowed, so it lends its targets.
            let snapshot = bucket.clone();
            let bucket = Self::lend_prefix_targets(bucket, &snapshot);
            let patterns: Vec<&[u8]> = bucket.iter().map(|(l, _)| l.as_slice()).collect();
            let search = GroupSearch::build(&patterns)?;
            groups.push(Group {
                search,
                targets: bucket.into_iter().map(|(_, t)| t).collect(),
            });
        }
        Ok(Prefilter {
            groups,
            qgram,
            patterns,
        })
    }

    /// Leftmost-first Teddy reports only the longest literal at a start, so a shorter literal
    /// that is a prefix of a longer one lends it its targets.
    fn lend_prefix_targets(
        mut bucket: Vec<(Vec<u8>, Vec<Target>)>,
        all: &[(Vec<u8>, Vec<Target>)],
    ) -> Vec<(Vec<u8>, Vec<Target>)> {
        for (lit, ts) in &mut bucket {
            for (other, ots) in all {
                if other.len() < lit.len() && lit.starts_with(other) {
                    ts.extend_from_slice(ots);
                }
            }
            ts.sort();
            ts.dedup();
        }
        bucket
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Calls `f(start, end, targets)` for every literal occurrence, overlapping ones included
    /// (the search restarts one byte after each hit's start).
    pub fn for_each_hit(&self, hay: &[u8], mut f: impl FnMut(usize, usize, &[Target])) {
        self.qgram.for_each_hit(hay, &mut f);
        for g in &self.groups {
            let mut pos = 0;
            while pos < hay.len() {
                let Some(m) = g.search.find(hay, pos) else {
                    break;
                };
                f(m.start(), m.end(), &g.targets[m.pattern().as_usize()]);
                pos = m.start() + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_prefix_hits_are_all_reported() {
        let lits = vec![
            (b"sk-".to_vec(), Target::Rule(0)),
            (b"sk-ant-api03-".to_vec(), Target::Rule(1)),
            (b"ant-api".to_vec(), Target::Rule(2)),
        ];
        let p = Prefilter::build(lits).unwrap();
        let mut seen = Vec::new();
        p.for_each_hit(b"x sk-ant-api03-abc", |s, _, ts| {
            seen.extend(ts.iter().map(|t| (s, *t)))
        });
        seen.sort();
        assert!(seen.contains(&(2, Target::Rule(0))));
        assert!(seen.contains(&(2, Target::Rule(1))));
        assert!(seen.contains(&(5, Target::Rule(2))));
    }

    /// Every pack keyword at both parities (and more): the anchor pair must put one gram on an
    /// even position wherever the keyword starts, whatever pair `anchor_pair` picked.
    #[test]
    fn every_pack_literal_is_found_at_every_offset() {
        let e = crate::engine::Engine::builtin().unwrap();
        let p = &e.prefilter;
        assert!(p.qgram.lits.len() > 200);
        for (lit, targets) in &p.qgram.lits {
            for pad in 0..5 {
                let mut hay = vec![b'~'; pad];
                hay.extend_from_slice(lit);
                hay.push(b'~');
                let mut found = false;
                p.for_each_hit(&hay, |s, e, ts| {
                    found |= s == pad && e == pad + lit.len() && ts == targets.as_slice();
                });
                assert!(found, "{:?} at {pad}", String::from_utf8_lossy(lit));
            }
        }
    }

    #[test]
    fn many_literals_every_offset() {
        let mut lits: Vec<_> = (0..300)
            .map(|i| (format!("kw{i:03}_").into_bytes(), Target::Rule(i)))
            .collect();
        lits.extend((0..40).map(|i| (format!("{i:02}~").into_bytes(), Target::Known(i))));
        let p = Prefilter::build(lits).unwrap();
        assert_eq!(p.group_count(), 3);
        for pad in 0..9 {
            let text = format!("{}kw299_ kw000_kw123_ 07~ x kw00 kw1", " ".repeat(pad));
            let mut hits = Vec::new();
            p.for_each_hit(text.as_bytes(), |s, _, ts| {
                hits.push((s - pad, ts.to_vec()))
            });
            hits.sort();
            let want = vec![
                (0, vec![Target::Rule(299)]),
                (7, vec![Target::Rule(0)]),
                (13, vec![Target::Rule(123)]),
                (20, vec![Target::Known(7)]),
            ];
            assert_eq!(hits, want, "pad {pad}");
        }
        // At the very end of the input.
        let mut n = 0;
        p.for_each_hit(b"kw042_", |_, _, _| n += 1);
        p.for_each_hit(b"xkw042_", |_, _, _| n += 1);
        assert_eq!(n, 2);
    }
}
