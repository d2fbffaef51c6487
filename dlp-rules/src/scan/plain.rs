//! Views whose only escapes are plain JSON ones (`\n \t \r \b \f \"`, `escape::raw_safe`),
//! scanned raw: the escape layer is not run over the whole view, only over the regions around
//! keyword hits that may open a window. LLM request bodies are nearly all of this kind, with an
//! escape every ~80 bytes, and decoding the whole view was the scan's largest cost after the
//! keyword screen (session 23: the same scan without the escape layer ran 1.5x as fast on LLM
//! JSON and 2x on JSON-encoded code).
//!
//! The findings are those of the decoded view, position for position (a differential test
//! holds the two paths to the same hits), because outside its escapes the decoded view holds
//! the raw bytes and no plain escape decodes to a letter, a digit or a `\`:
//! - every keyword occurrence in the decoded view is one in the raw bytes, once the keywords
//!   holding `"` also go in spelled with `\"` (`escaped_spellings`); a raw occurrence that takes
//!   in an escape's letter is only an extra hit, checked like any other;
//! - a hit opens a window only where its rule's tail may follow in the decoded bytes
//!   (`Tails::live_plain`); there, the raw bytes around it are decoded, twice the rule's window
//!   on each side (an escape is two raw bytes for one decoded), and the regions so found are
//!   merged and each scanned as a view of its own. Every window of a live hit lies whole inside
//!   its region, so its rule runs over the same bytes with the same neighbours as in the decoded
//!   view; a hit inside a region that failed its tail fails it there too. Rules whose failed
//!   windows are restored where they have a live one (`Tails::restores`) could need a window
//!   outside the region, so a live hit of one sends the view back to the whole escape layer;
//! - base64 and hex runs are found in the raw bytes (`base64::find_runs_escaped`: a run holds
//!   no escape, an escape's letter glued in front is dropped, wrapped lines join across `\n`
//!   escapes), and decode to the same payloads;
//! - known secrets come from the raw prefilter: one found whole between escapes is the decoded
//!   view's, one that starts at an escape's letter is what the raw-bytes check adds
//!   (`scan/known.rs`). None holds a `\`, a quote or a control byte (else this path is off).

use super::confirm::Gated;
use super::{join, Hit, MAX_DEPTH};
use crate::decode::{escape, PosMap};
use crate::engine::Engine;
use crate::prefilter::Target;
use crate::tail::Asked;

/// Raw bytes decoded beyond a window's own reach on each side: look-arounds read a neighbour,
/// and a region's ends are moved off an escape's letter.
const MARGIN: usize = 8;

impl Engine {
    /// Scans `hay` with the hits `scan_depth` would give for its decoded view, if `hay` is
    /// `escape::raw_safe`. Returns `false`, having written nothing, where it is not, or where a
    /// rule that restores failed windows has a live hit: the caller then decodes the whole view.
    pub(super) fn scan_plain(&self, hay: &[u8], depth: u8, out: &mut Vec<Hit>) -> bool {
        let mut regions: Vec<(usize, usize)> = Vec::new();
        // The live hits, `(raw start, rule)`: only they open windows in a decoded region.
        // Another hit there may lie near the region's end, where its tail and its window would
        // be read cut short; it failed its tail in the raw bytes, so it fails in the decoded view.
        let mut live: Vec<(usize, u32)> = Vec::new();
        let mut known: Vec<Hit> = Vec::new();
        let mut restores = false;
        if !escape::raw_safe(hay) {
            return false;
        }
        self.prefilter.for_each_hit(hay, |s, e, targets| {
            let mut asked = Asked::default();
            for t in targets {
                match *t {
                    Target::Rule(r) => {
                        if !self.tails.live_plain(&mut asked, r, hay, s, e) {
                            continue;
                        }
                        restores |= self.tails.restores(r);
                        live.push((s, r));
                        let (before, after) = self.reach_of(r, s, e);
                        let a = s.saturating_sub(2 * before + MARGIN);
                        let b = s.saturating_add(2 * after + MARGIN).min(hay.len());
                        regions.push((a, b));
                    }
                    Target::Known(_) => {
                        let mut h = super::known::hit(hay, s, e, *t);
                        // Not at an escape's letter: the decoded view's find, where every hit
                        // is labelled as escaped; at one, the raw-bytes check's (unlabelled).
                        if !(s > 0 && hay[s - 1] == b'\\' && escape::plain_letter(hay[s])) {
                            h.encoding = "escaped".into();
                        }
                        known.push(h);
                    }
                }
            }
        });
        if restores {
            return false;
        }
        let from = out.len();
        out.extend(known);
        live.sort_unstable();
        regions.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(regions.len());
        for (a, b) in regions {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut buf = Vec::new();
        let mut map = PosMap::default();
        for (a, b) in merged {
            // Never between a `\` and its letter.
            let a = if a > 0 && hay[a - 1] == b'\\' {
                a - 1
            } else {
                a
            };
            let b = if b < hay.len() && hay[b - 1] == b'\\' {
                b + 1
            } else {
                b
            };
            self.scan_region(hay, (a, b), &live, (&mut buf, &mut map), out);
        }
        if depth < MAX_DEPTH {
            let mut runs = Vec::new();
            self.scan_runs(hay, depth, false, true, &mut runs);
            for mut h in runs {
                h.encoding = join("escaped", &h.encoding);
                out.push(h);
            }
        }
        // A view whose backslashes are all kept as they are (`\q`) decodes to itself: its hits
        // are not labelled as escaped. Asked only when there are hits.
        if out.len() > from && !escape::decodes_any(hay) {
            for h in &mut out[from..] {
                h.encoding = match h.encoding.strip_prefix("escaped") {
                    Some(rest) => rest.trim_start_matches('+').to_string(),
                    None => std::mem::take(&mut h.encoding),
                };
            }
        }
        true
    }

    /// Decodes `hay[a..b]` and confirms the rules' windows in it, hits at raw positions.
    fn scan_region(
        &self,
        hay: &[u8],
        (a, b): (usize, usize),
        live: &[(usize, u32)],
        (buf, map): (&mut Vec<u8>, &mut PosMap),
        out: &mut Vec<Hit>,
    ) {
        escape::normalize(&hay[a..b], false, buf, map);
        let view: &[u8] = buf;
        let mut local = Vec::new();
        let map_ref: &PosMap = map;
        let keep = |s: usize, r: u32| live.binary_search(&(a + map_ref.map(s), r)).is_ok();
        let wins = self.windows(view, false, Some(&keep), &mut local);
        // Known secrets were taken from the raw bytes, everywhere.
        local.clear();
        let mut gated = Gated::default();
        for &(r, ws, we, live) in &wins {
            if live {
                self.run_gated(&mut gated, r, view, ws, we, &mut local);
            }
        }
        for mut h in local {
            (h.start, h.end) = (a + map.map(h.start), a + map.map(h.end));
            h.encoding = join("escaped", &h.encoding);
            out.push(h);
        }
    }

    /// How far rule `r`'s window for a hit at `s..e` reaches before `s` and after `s`, in
    /// decoded bytes (`window_around`).
    fn reach_of(&self, r: u32, s: usize, e: usize) -> (usize, usize) {
        match self.reach.get(r as usize).copied().flatten() {
            Some(reach) => (0, reach),
            None => {
                let w = self.rules[r as usize].window;
                (w, e - s + w)
            }
        }
    }
}

/// Whether the raw path can serve an engine with these prefilter literals (no literal holds a
/// `\` or a byte a plain escape decodes to, but a quote in a rule keyword), and if so, adds the
/// keywords holding quotes spelled with `\"` (`escaped_spellings`), for the same rules.
pub(crate) fn with_escaped_spellings(literals: &mut Vec<(Vec<u8>, Target)>) -> bool {
    let plain = literals.iter().all(|(l, t)| {
        !l.contains(&b'\\')
            && l.iter()
                .all(|&b| !escape::plain_output(b) || (b == b'"' && matches!(t, Target::Rule(_))))
    });
    if plain {
        let spelled: Vec<_> = literals
            .iter()
            .filter(|(l, _)| l.contains(&b'"'))
            .flat_map(|(l, t)| escaped_spellings(l).into_iter().map(move |v| (v, *t)))
            .collect();
        literals.extend(spelled);
    }
    plain
}

/// The spellings of a keyword holding `"` with some of its quotes escaped (`\"`), as the raw
/// bytes of a JSON string carry it: every combination but the keyword itself, which is already
/// a literal. At most 2^4 - 1 per keyword (more quotes than that: only the all-escaped one).
pub(crate) fn escaped_spellings(lit: &[u8]) -> Vec<Vec<u8>> {
    let quotes: Vec<usize> = (0..lit.len()).filter(|&i| lit[i] == b'"').collect();
    let combos: Vec<u32> = if quotes.len() <= 4 {
        (1..1u32 << quotes.len()).collect()
    } else {
        vec![u32::MAX]
    };
    combos
        .into_iter()
        .map(|set| {
            let mut v = Vec::with_capacity(lit.len() + quotes.len());
            let mut q = 0;
            for &c in lit {
                if c == b'"' {
                    if set >> q.min(31) & 1 == 1 {
                        v.push(b'\\');
                    }
                    q += 1;
                }
                v.push(c);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests;
