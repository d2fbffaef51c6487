//! How one Teddy group of short literals is searched (see `prefilter.rs`).

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind, Span};

use crate::error::DlpError;

/// How a group is searched: aho-corasick's packed (Teddy) searcher called directly where this
/// CPU runs it, the whole automaton otherwise. The automaton only wraps the same Teddy search
/// as its prefilter, but every search through it also passes its layers, and a group's search
/// restarts after every hit (one per `://` of a link: 1 583 per MiB of the source-code corpus,
/// where those layers were ~18 ns a hit). `scan_bench` A/B, 12 alternated rounds (session 18):
/// source code +4 %, the other corpora +1-2 %.
#[derive(Debug)]
pub(super) enum GroupSearch {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl GroupSearch {
    pub(super) fn build(patterns: &[&[u8]]) -> Result<GroupSearch, DlpError> {
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(patterns)
            .build();
        if let Some(searcher) = packed {
            return Ok(GroupSearch::Packed(searcher));
        }
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .prefilter(true)
            .build(patterns)
            .map(GroupSearch::Automaton)
            .map_err(|e| DlpError::Rule {
                rule: "(prefilter)".into(),
                msg: e.to_string(),
            })
    }

    /// The leftmost-first match starting at or after `from`.
    #[inline]
    pub(super) fn find(&self, hay: &[u8], from: usize) -> Option<aho_corasick::Match> {
        match self {
            GroupSearch::Packed(s) => s.find_in(hay, Span::from(from..hay.len())),
            GroupSearch::Automaton(ac) => ac.find(Input::new(hay).span(from..hay.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the packed searcher is built (this CPU), the automaton is the fallback: both give
    /// the same leftmost-first match from every start.
    #[test]
    fn packed_search_and_its_fallback_agree() {
        let patterns: [&[u8]; 6] = [b"sk-ant", b"://", b"xox", b"eyJ", b"sk-", b"aaa"];
        // A CPU without Teddy (no SSSE3) builds the automaton alone: nothing to compare there.
        let GroupSearch::Packed(packed) = GroupSearch::build(&patterns).unwrap() else {
            return;
        };
        let packed = GroupSearch::Packed(packed);
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(patterns)
            .unwrap();
        let fallback = GroupSearch::Automaton(ac);
        let pieces: &[&[u8]] = &[b":", b"//", b"sk-", b"ant", b"xo", b"x", b"eyJ", b"a", b" "];
        let mut rng = crate::testgen::Lcg::new(9);
        let mut found = 0;
        for _ in 0..2000 {
            let n = (rng.next() >> 58) as usize;
            let hay: Vec<u8> = (0..n).flat_map(|_| rng.pick(pieces).to_vec()).collect();
            for from in 0..=hay.len() {
                let m = |g: &GroupSearch| {
                    g.find(&hay, from)
                        .map(|m| (m.start(), m.end(), m.pattern()))
                };
                let want = m(&fallback);
                assert_eq!(
                    m(&packed),
                    want,
                    "{:?} from {from}",
                    String::from_utf8_lossy(&hay)
                );
                found += usize::from(want.is_some());
            }
        }
        assert!(found > 10_000, "{found}");
    }
}
