//! Confirmation: keyword hits become per-rule windows, and each window runs its rule's regex,
//! after the cheap checks that rule most windows out (what must follow the keyword, a shared
//! gate, a required byte).

use regex_automata::Input;

use super::Hit;
use crate::engine::Engine;
use crate::filter;
use crate::finding;
use crate::prefilter::Target;
use crate::tail::Asked;

/// `(rule, start, end, live)`, see `Engine::windows`.
pub(crate) type Window = (u32, usize, usize, bool);

impl Engine {
    /// Windows (sorted) in which each triggered rule's regex must run: `(rule, start, end,
    /// live)`. A window is `live` unless every hit behind it failed its rule's tail
    /// (`tail.rs`): the rule need not run there on `view`, though it still may on the encoded
    /// layers under it. Windows of failed hits are left out unless `keep_dead` (the caller
    /// re-runs windows on encoded layers) or the rule's matches may reach beyond their own
    /// hit's window (`Tails::droppable`; those are found again afterwards, see
    /// `restore_dead_windows`).
    /// `only`: the hits (start, rule) that may open a window at all (`scan/plain.rs`: those
    /// found live in the raw bytes around a decoded region); `None`: every hit.
    pub(crate) fn windows(
        &self,
        view: &[u8],
        keep_dead: bool,
        only: Option<&dyn Fn(usize, u32) -> bool>,
        out: &mut Vec<Hit>,
    ) -> Vec<Window> {
        let mut wins: Vec<Window> = Vec::new();
        self.prefilter.for_each_hit(view, |s, e, targets| {
            let mut asked = Asked::default();
            for t in targets {
                match *t {
                    // A keyword spelled with `\"` (`scan/plain.rs`) is for raw bytes only: in a
                    // decoded view the keyword itself is there to be found.
                    Target::Rule(_) if self.plain && view[s..e].contains(&b'\\') => {}
                    Target::Rule(r) if only.is_some_and(|keep| !keep(s, r)) => {}
                    Target::Rule(r) => {
                        let live = self.tails.live(&mut asked, r, view, s, e);
                        if live || keep_dead {
                            let (ws, we) = self.window_around(r, s, e, view.len());
                            wins.push((r, ws, we, live));
                        }
                    }
                    Target::Known(_) => out.push(super::known::hit(view, s, e, *t)),
                }
            }
        });
        for &r in &self.keywordless {
            wins.push((r, 0, view.len(), true));
        }
        if !keep_dead {
            self.restore_dead_windows(view, &mut wins);
        }
        // Many windows (e.g. 7 rules per `://` hit): counting sort by rule, O(n), since hits
        // arrive in position order per prefilter pass and each rule's slice is usually sorted
        // already; a comparison sort was a tenth of the scan on such JSON. Few: plain sort (no
        // per-call tables for URLs and headers).
        let wins = if wins.len() <= 64 {
            let mut wins = wins;
            wins.sort_unstable();
            wins
        } else {
            self.group_by_rule(wins)
        };
        let mut merged: Vec<Window> = Vec::with_capacity(wins.len());
        for (r, s, e, live) in wins {
            match merged.last_mut() {
                Some(last) if last.0 == r && s <= last.2 => {
                    last.2 = last.2.max(e);
                    last.3 |= live;
                }
                _ => merged.push((r, s, e, live)),
            }
        }
        merged
    }

    /// Adds the windows of failed hits for the rules that need them: a rule whose matches may
    /// start before its own hit's window (`Tails::droppable` false: a `postgresql+<driver>://`
    /// scheme of any length) is found through a failed hit's window merged with a live one,
    /// so where such a rule has a live window, every hit of its tail's literal gets a window
    /// (dead ones; the live ones again, which merging absorbs). Found again here by searching
    /// the view for that literal, rather than kept on the way: a dead window kept for two URL
    /// rules at every link cost 1.5-2.5 % of a scan of LLM JSON or source code, and a live
    /// window of those rules is rare (session 18).
    fn restore_dead_windows(&self, view: &[u8], wins: &mut Vec<Window>) {
        let mut need: Vec<u32> = wins
            .iter()
            .filter(|w| w.3 && !self.tails.droppable(w.0))
            .map(|w| w.0)
            .collect();
        need.sort_unstable();
        need.dedup();
        for r in need {
            let Some(lit) = self.tails.literal_of(r) else {
                continue;
            };
            let finder = memchr::memmem::Finder::new(lit);
            let mut pos = 0;
            // Every start, overlapping ones included, as the prefilter reports them.
            while let Some(i) = view.get(pos..).and_then(|rest| finder.find(rest)) {
                let s = pos + i;
                let (ws, we) = self.window_around(r, s, s + lit.len(), view.len());
                wins.push((r, ws, we, false));
                pos = s + 1;
            }
        }
    }

    /// The window rule `r` runs in for its hit `s..e` in a view of `len` bytes: `window` bytes
    /// on both sides, or from the hit on for a rule whose matches start with its literals.
    #[inline]
    fn window_around(&self, r: u32, s: usize, e: usize, len: usize) -> (usize, usize) {
        let rule = &self.rules[r as usize];
        match self.reach.get(r as usize).copied().flatten() {
            Some(reach) => (s, (s + reach).min(len)),
            None => (s.saturating_sub(rule.window), (e + rule.window).min(len)),
        }
    }

    /// Runs rule `r` in `view[s..e]` unless its group gate (one search for all rules sharing
    /// its keywords) finds that no member can match there. The gate answer is kept per span, so
    /// rules with identical windows share it. Sound: a rule match in the span is a gate match.
    pub(super) fn run_gated(
        &self,
        gated: &mut Gated,
        r: u32,
        view: &[u8],
        s: usize,
        e: usize,
        out: &mut Vec<Hit>,
    ) {
        if let Some(g) = self.gate_of[r as usize] {
            let key = (g, s, e);
            let open = match gated.binary_search_by(|m| m.0.cmp(&key)) {
                Ok(i) => gated[i].1,
                Err(i) => {
                    let gate = &self.gates[g as usize];
                    let open = present(gate.confirm, &view[s..e])
                        && gate.regex.is_match(Input::new(view).span(s..e));
                    gated.insert(i, (key, open));
                    open
                }
            };
            if !open {
                return;
            }
        } else if !present(self.rules[r as usize].confirm, &view[s..e]) {
            return;
        }
        self.run_rule(r, view, s, e, out);
    }

    fn group_by_rule(&self, wins: Vec<Window>) -> Vec<Window> {
        let mut starts = vec![0usize; self.rules.len() + 1];
        for w in &wins {
            starts[w.0 as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut sorted = vec![(0u32, 0usize, 0usize, false); wins.len()];
        let mut next = starts.clone();
        for w in wins {
            sorted[next[w.0 as usize]] = w;
            next[w.0 as usize] += 1;
        }
        for r in 0..self.rules.len() {
            let slice = &mut sorted[starts[r]..starts[r + 1]];
            if !slice.is_sorted() {
                slice.sort_unstable();
            }
        }
        sorted
    }

    fn run_rule(&self, r: u32, view: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
        let rule = &self.rules[r as usize];
        let input = Input::new(view).span(s..e);
        let mut accept = |ms: usize, me: usize, secret: (usize, usize)| {
            if me == ms || me - ms > rule.max_len {
                return;
            }
            let secret = &view[secret.0..secret.1];
            if rule
                .entropy
                .is_some_and(|min| !filter::passes_entropy(secret, min))
                || filter::is_placeholder(secret)
            {
                return;
            }
            out.push(Hit {
                target: Target::Rule(r),
                start: ms,
                end: me,
                preview: finding::preview(&view[ms..me], &rule.literals),
                encoding: String::new(),
                validated: rule.validator.check(secret),
            });
        };
        let Some(regex) = rule.regex() else {
            // A validated pattern that could not be built: fail closed on the whole window.
            out.push(Hit {
                target: Target::Rule(r),
                start: s,
                end: e,
                preview: finding::preview(&view[s..e], &[]),
                encoding: String::new(),
                validated: None,
            });
            return;
        };
        match rule.secret_group {
            None => {
                for m in regex.find_iter(input) {
                    accept(m.start(), m.end(), (m.start(), m.end()));
                }
            }
            Some(g) => {
                for caps in regex.captures_iter(input) {
                    let Some(m) = caps.get_match() else { continue };
                    let sec = caps
                        .get_group(g)
                        .map_or((m.start(), m.end()), |sp| (sp.start, sp.end));
                    accept(m.start(), m.end(), sec);
                }
            }
        }
    }
}

/// Gate answers per `(gate, span start, span end)` for one view.
/// Sorted by key; a rule's windows arrive in order, so inserts append. (Not a hash map: the keys
/// are positions an attacker chooses, and a sorted vector has no bad case.)
pub(super) type Gated = Vec<((u32, usize, usize), bool)>;

/// Whether the byte a rule (or gate) requires beyond its keyword occurs in the window; no
/// such byte means nothing to rule out.
fn present(confirm: Option<u8>, window: &[u8]) -> bool {
    confirm.is_none_or(|b| memchr::memchr(b, window).is_some())
}

#[cfg(test)]
mod tests;
