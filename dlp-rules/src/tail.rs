//! What must follow a keyword, read off the regex: a keyword hit whose next bytes cannot start
//! that part of the rule opens no window.
//!
//! Why: `://` is the one common keyword in LLM prose and in code (540 hits per MiB of the
//! prose corpus, 1 600 in source code), and nearly every hit is a plain link. Each one opened a
//! 400-byte window for seven URL-credential rules, and where the window held an `@` (an e-mail
//! address, a decorator in code) the rules' shared gate ran a lazy DFA over all of it. The seven
//! regexes all go on, after `://`, with `user:password@host`; `https://example.com/` fails that
//! at its first `/`, a dozen bytes in. One anchored search from the keyword's end rules the hit
//! out.
//!
//! Soundness: the tail exists only when the rule's regex, at its top level, is a concatenation
//! in which a literal element ends with the keyword; the tail is the concatenation of the
//! elements after it. Every match then holds that literal, so the keyword ends at some position
//! `p` inside the match, followed at once by a match of the tail. The prefilter reports every
//! occurrence of the keyword, the one ending at `p` too, and the tail matches there, so that
//! hit still opens its window, and the merged window that holds the match holds that hit. So a
//! merged window in which every hit failed holds no match and is not run. Leaving such windows
//! out before merging is sound only for rules where what comes before the keyword's end and
//! the tail are each at most the window long: their matches lie inside the window of their
//! own hit, so no failed hit's window was needed to reach them (two URL-credential rules, whose
//! scheme may be `postgresql+` and any length of driver name, keep theirs). A hit whose tail fails only
//! marks its window as not needed for the view it was found in; the windows re-run on the
//! encoded layers (a `%`-encoded password, see `scan.rs`) are kept whole, since a tail read on
//! the decoded bytes says nothing about them. Case-insensitive keywords (classes, not literals),
//! alternations at the top level and keywords that do not end a literal get no tail.

use std::sync::OnceLock;

use regex_automata::dfa::dense::DFA;
use regex_automata::dfa::{Automaton, StartKind};
use regex_automata::meta::Regex;
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};
use regex_syntax::hir::{Hir, HirKind};

use crate::{required, rule};

/// The tails of all rules, deduplicated (the seven URL-credential rules share one), each
/// compiled on first use like the rules' own regexes.
#[derive(Debug, Default)]
pub(crate) struct Tails {
    tails: Vec<Tail>,
    /// The literals whose hits have a tail, deduplicated.
    literals: Vec<Box<[u8]>>,
    /// Per rule: `(literal, tail)` indexes, or `NONE`.
    of: Vec<(u32, u32)>,
    /// Per rule: the windows of its failed hits may be left out entirely (`RuleTail::own_window`).
    droppable: Vec<bool>,
}

const NONE: (u32, u32) = (u32::MAX, u32::MAX);

/// What one hit has learned so far: every rule behind a literal is asked in turn, and they
/// mostly share the literal and its tail (seven rules on `://`), so each is compared or
/// searched once per hit.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    literal: Option<(u32, bool)>,
    tail: Option<(u32, bool)>,
}

/// A rule's tail as read off its syntax tree when the rule is loaded (the tree is parsed then
/// anyway, and kept no longer): the literal whose hits it follows, the tail as a pattern,
/// compiled only if that literal ever hits, and what the check needs before compiling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleTail {
    literal: String,
    pattern: String,
    /// Longest match of the tail: the search never reads further (`None`: unbounded).
    max_len: Option<usize>,
    /// A rare byte every match of the tail holds (the `@` of `user:password@host`): one
    /// `memchr` over the reach of the tail settles most hits before the regex would start.
    confirm: Option<u8>,
    /// What comes before the keyword's end and the tail are each at most the rule's window
    /// long, so every match lies inside the window of its own keyword hit.
    own_window: bool,
}

impl RuleTail {
    /// The tail after the first of `literals` (the rule's prefilter literals) that has one.
    /// `anchored`: the rule's windows start at their hit (`rule::anchored_reach`), so a match
    /// lies inside its own hit's window only if nothing but the keyword stands before the tail.
    pub(crate) fn read(
        hir: &Hir,
        literals: &[String],
        window: usize,
        anchored: bool,
    ) -> Option<RuleTail> {
        literals.iter().find_map(|l| {
            let (head, tail) = split_after(hir, l.as_bytes())?;
            let max_len = tail.properties().maximum_len();
            let head_len = head.properties().maximum_len();
            let fits = |m: Option<usize>| m.is_some_and(|m| m <= window);
            Some(RuleTail {
                literal: l.clone(),
                // Printed from the tree, the pattern parses back to the same tree.
                pattern: tail.to_string(),
                max_len,
                confirm: required::confirm_byte(required::required_bytes(&tail), &[]),
                own_window: if anchored {
                    head_len == Some(l.len())
                } else {
                    fits(head_len) && fits(max_len)
                },
            })
        })
    }
}

#[derive(Debug)]
struct Tail {
    rule: RuleTail,
    regex: OnceLock<Option<Regex>>,
    /// The tail as an anchored DFA, for `live_plain`: whether it dies on the bytes before an
    /// escape. Built on first use; `None` past its size limit (the hit then counts as live).
    dfa: OnceLock<Option<DFA<Vec<u32>>>>,
}

/// Whether `tail`, read from `at`, fails within `view[at..stop]`: its anchored DFA reaches the
/// dead state there (no match can start with those bytes, whatever follows them). The bytes
/// before an escape are the decoded view's, so a tail that dies on them dies there too.
fn dies_before(tail: &Tail, view: &[u8], at: usize, stop: usize) -> bool {
    let Some(dfa) = tail.dfa.get_or_init(|| build_dfa(&tail.rule.pattern)) else {
        return false;
    };
    let input = Input::new(view)
        .span(at..view.len())
        .anchored(Anchored::Yes);
    let Ok(mut sid) = dfa.start_state_forward(&input) else {
        return false;
    };
    for &b in &view[at..stop] {
        sid = dfa.next_state(sid, b);
        if dfa.is_dead_state(sid) {
            return true;
        }
        if dfa.is_match_state(sid) || dfa.is_quit_state(sid) {
            return false;
        }
    }
    false
}

/// The DFA of a tail: the dialect of the rules' regexes (`rule::build_regex`), anchored, and
/// small (tails are a few bounded classes; one past the limit is simply not used).
fn build_dfa(pattern: &str) -> Option<DFA<Vec<u32>>> {
    DFA::builder()
        .syntax(syntax::Config::new().utf8(false).unicode(false))
        .thompson(thompson::Config::new().utf8(false))
        .configure(
            DFA::config()
                .start_kind(StartKind::Anchored)
                .dfa_size_limit(Some(DFA_LIMIT))
                .determinize_size_limit(Some(DFA_LIMIT)),
        )
        .build(pattern)
        .ok()
}

/// Bytes a tail's DFA may take. Of the 102 tails of the embedded packs, 93 need under 60 KiB
/// (the URL tail, the one hit on every link, a few KiB); the few past this limit repeat a class
/// hundreds of times (`{100,3000}` after a JWT's `eyJ`, up to 1 MiB) and their hits count as
/// live instead, so an engine's DFAs stay near 1 MiB in all even if every tail is used.
const DFA_LIMIT: usize = 128 << 10;

impl Tails {
    /// `rules[i]` = the tail of rule `i`, if it has one.
    pub(crate) fn build<'a>(rules: impl IntoIterator<Item = Option<&'a RuleTail>>) -> Tails {
        let mut t = Tails::default();
        for tail in rules {
            let entry =
                tail.and_then(|tail| Some((t.literal(tail.literal.as_bytes())?, t.intern(tail)?)));
            t.of.push(entry.unwrap_or(NONE));
            t.droppable.push(tail.is_some_and(|tail| tail.own_window));
        }
        t
    }

    /// Whether the windows of `rule`'s failed hits may be left out instead of kept, merged
    /// with the others, and skipped where no live hit is among them.
    pub(crate) fn droppable(&self, rule: u32) -> bool {
        self.droppable.get(rule as usize).copied().unwrap_or(false)
    }

    fn literal(&mut self, lit: &[u8]) -> Option<u32> {
        let i = match self.literals.iter().position(|l| **l == *lit) {
            Some(i) => i,
            None => {
                self.literals.push(lit.into());
                self.literals.len() - 1
            }
        };
        u32::try_from(i).ok().filter(|&i| i != u32::MAX)
    }

    fn intern(&mut self, tail: &RuleTail) -> Option<u32> {
        // By pattern alone: the rest follows from it, or (`own_window`) is kept per rule.
        let i = match self
            .tails
            .iter()
            .position(|t| t.rule.pattern == tail.pattern)
        {
            Some(i) => i,
            None => {
                self.tails.push(Tail {
                    rule: tail.clone(),
                    regex: OnceLock::new(),
                    dfa: OnceLock::new(),
                });
                self.tails.len() - 1
            }
        };
        u32::try_from(i).ok().filter(|&i| i != u32::MAX)
    }

    /// The literal whose hits `rule`'s tail follows, if the rule has a tail: the only hits of
    /// the rule that can fail it.
    pub(crate) fn literal_of(&self, rule: u32) -> Option<&[u8]> {
        let &(l, _) = self.of.get(rule as usize)?;
        self.literals.get(l as usize).map(|l| &**l)
    }

    /// The tail a hit of `rule` on `keyword` must be followed by, if any.
    #[cfg(test)]
    pub(crate) fn of(&self, rule: u32, keyword: &[u8]) -> Option<u32> {
        let &(l, t) = self.of.get(rule as usize)?;
        let lit = self.literals.get(l as usize)?;
        (**lit == *keyword).then_some(t)
    }

    /// Whether the hit `view[s..e]` of `rule` may open a window: its rule has no tail for
    /// this literal, or the tail follows.
    #[inline]
    pub(crate) fn live(
        &self,
        asked: &mut Asked,
        rule: u32,
        view: &[u8],
        s: usize,
        e: usize,
    ) -> bool {
        self.live_by(asked, rule, view, (s, e), |t| self.follows(t, view, e))
    }

    /// `live` for a hit in the raw bytes of a view with plain JSON escapes only, answering for
    /// its decoded view (`follows_plain`). Kept apart from `live` although they differ in one
    /// call: one function with a flag ran the raw path 8 % slower on LLM JSON (`scan_bench`,
    /// 16 alternated rounds, 2035 against 1875 MB/s; session 23).
    #[inline]
    pub(crate) fn live_plain(
        &self,
        asked: &mut Asked,
        rule: u32,
        view: &[u8],
        s: usize,
        e: usize,
    ) -> bool {
        self.live_by(asked, rule, view, (s, e), |t| {
            self.follows_plain(t, view, e)
        })
    }

    /// The literal compared and the tail read once per hit, whatever the rules behind it.
    #[inline]
    fn live_by(
        &self,
        asked: &mut Asked,
        rule: u32,
        view: &[u8],
        (s, e): (usize, usize),
        follows: impl FnOnce(u32) -> bool,
    ) -> bool {
        let Some(&(l, t)) = self.of.get(rule as usize) else {
            return true;
        };
        if l == NONE.0 {
            return true;
        }
        let same = match asked.literal {
            Some((a, same)) if a == l => same,
            _ => {
                let same = self
                    .literals
                    .get(l as usize)
                    .is_some_and(|lit| **lit == view[s..e]);
                asked.literal = Some((l, same));
                same
            }
        };
        if !same {
            return true;
        }
        match asked.tail {
            Some((a, live)) if a == t => live,
            _ => {
                let live = follows(t);
                asked.tail = Some((t, live));
                live
            }
        }
    }

    /// Whether tail `t` may follow at `view[at..]` in the decoded view, `view` being the raw
    /// bytes of a view whose only escapes are the plain JSON ones (`escape::raw_safe`):
    /// `false` only where the decoded tail surely fails. Decoding turns two raw bytes into one,
    /// so the decoded reach of the tail comes from at most twice as many raw bytes; a byte the
    /// tail needs (`confirm`) that those raw bytes lack is missing from the decoded reach as well
    /// (no plain escape decodes to one: tested); where the raw reach holds no escape, the decoded
    /// bytes are the raw ones and the tail is read as it is; else the tail must die on the bytes
    /// before the first escape (`dies_before`).
    fn follows_plain(&self, t: u32, view: &[u8], e: usize) -> bool {
        let Some(tail) = self.tails.get(t as usize) else {
            return true;
        };
        let Some(max) = tail.rule.max_len else {
            return true;
        };
        let reach = &view[e..e.saturating_add(2 * max + 2).min(view.len())];
        if let Some(b) = tail.rule.confirm {
            if !crate::decode::escape::plain_output(b) && memchr::memchr(b, reach).is_none() {
                return false;
            }
        }
        let exact = &reach[..reach.len().min(max + 1)];
        match memchr::memchr(b'\\', exact) {
            None => self.follows(t, view, e),
            Some(i) => !dies_before(tail, view, e, e + i),
        }
    }

    /// Whether the windows of `rule`'s failed hits are restored where it has a live one
    /// (`confirm::restore_dead_windows`): a rule with a tail whose windows are not droppable.
    pub(crate) fn restores(&self, rule: u32) -> bool {
        self.of
            .get(rule as usize)
            .is_some_and(|&(l, _)| l != NONE.0)
            && !self.droppable(rule)
    }

    /// Whether tail `t` matches at `view[at..]` (look-arounds see the whole view, as the rule's
    /// regex does in its window). A tail that failed to compile answers yes (fail open to the
    /// rule, which then runs as it would without tails).
    pub(crate) fn follows(&self, t: u32, view: &[u8], at: usize) -> bool {
        let Some(tail) = self.tails.get(t as usize) else {
            return true;
        };
        let end = tail
            .rule
            .max_len
            .map_or(view.len(), |m| at.saturating_add(m).min(view.len()));
        let at = at.min(end);
        if let Some(b) = tail.rule.confirm {
            if memchr::memchr(b, &view[at..end]).is_none() {
                return false;
            }
        }
        let Some(re) = tail
            .regex
            .get_or_init(|| rule::build_regex(&tail.rule.pattern))
        else {
            return true;
        };
        re.is_match(Input::new(view).span(at..end).anchored(Anchored::Yes))
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.tails.len()
    }
}

/// Every match of `hir` split where a literal ending in `keyword` ends: `(head, tail)`, when
/// `hir` is (inside top-level groups) a concatenation holding such a literal and something
/// after it; `None` otherwise.
pub(crate) fn split_after(hir: &Hir, keyword: &[u8]) -> Option<(Hir, Hir)> {
    match hir.kind() {
        HirKind::Capture(cap) => split_after(&cap.sub, keyword),
        HirKind::Concat(parts) => {
            let at = parts.iter().position(|p| match p.kind() {
                HirKind::Literal(lit) => !keyword.is_empty() && lit.0.ends_with(keyword),
                _ => false,
            })?;
            let (head, rest) = parts.split_at_checked(at + 1)?;
            if rest.is_empty() {
                return None;
            }
            Some((Hir::concat(head.to_vec()), Hir::concat(rest.to_vec())))
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
