//! One-shot scan of a byte view: escape layer, keyword prefilter, windowed regex confirmation,
//! then base64/hex runs decoded and scanned recursively. Everything here works on a bounded
//! buffer; `stream.rs` slides that buffer over a body.

use regex_automata::Input;

use crate::decode::{base64, escape, hex, PosMap};
use crate::engine::Engine;
use crate::filter;
use crate::finding;
use crate::prefilter::Target;

/// Decoding depth: raw → base64 → base64 (e.g. a base64 PEM inside a base64 JSON blob).
const MAX_DEPTH: u8 = 2;
/// Decoded payloads shorter than this cannot hold a secret worth reporting.
const MIN_DECODED: usize = 8;

/// A confirmed match, in the coordinates of the view passed to `scan_view`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub target: Target,
    pub start: usize,
    pub end: usize,
    pub preview: String,
    pub encoding: String,
    pub validated: Option<bool>,
}

impl Engine {
    /// Scans `hay`, appending hits (deduplicated) to `out`. `form`: `+` means space.
    pub(crate) fn scan_view(&self, hay: &[u8], form: bool, out: &mut Vec<Hit>) {
        let mut hits = Vec::new();
        self.scan_depth(hay, form, 0, &mut hits);
        hits.sort_by_key(|h| (h.start, h.end, h.target));
        hits.dedup_by(|a, b| a.target == b.target && a.start == b.start && a.end == b.end);
        out.extend(hits);
    }

    fn scan_depth(&self, hay: &[u8], form: bool, depth: u8, out: &mut Vec<Hit>) {
        // Escape layer, applied at most twice (double percent-encoding). When it applies, the
        // decoded view replaces the raw one: outside escapes they are the same bytes.
        let mut v1 = Vec::new();
        let mut m1 = PosMap::default();
        let mut v2 = Vec::new();
        let mut m2 = PosMap::default();
        let mut layers = 0;
        if escape::needs_normalize(hay, form) && escape::normalize(hay, form, &mut v1, &mut m1) {
            layers = 1;
            if escape::needs_normalize(&v1, false)
                && escape::normalize(&v1, false, &mut v2, &mut m2)
            {
                layers = 2;
            }
        }
        let view: &[u8] = match layers {
            0 => hay,
            1 => &v1,
            _ => &v2,
        };
        let mut local = Vec::new();
        let wins = self.windows(view, &mut local);
        for &(r, ws, we) in &wins {
            self.run_rule(r, view, ws, we, &mut local);
        }
        if depth < MAX_DEPTH {
            self.scan_runs(view, depth, &mut local);
        }
        for mut h in local {
            if layers == 2 {
                (h.start, h.end) = (m2.map(h.start), m2.map(h.end));
            }
            if layers >= 1 {
                (h.start, h.end) = (m1.map(h.start), m1.map(h.end));
                h.encoding = join("escaped", &h.encoding);
            }
            out.push(h);
        }
        // Patterns written against the encoded form (a SAS `sig=...%3D` in a URL) must still
        // match it: each window is re-run on the lower layers wherever decoding changed its bytes.
        // Keyword hits come from the decoded view, so this costs only regex time in windows.
        if layers >= 1 {
            for &(r, ws, we) in &wins {
                let (s1, e1) = if layers == 2 {
                    (m2.map(ws), m2.map(we))
                } else {
                    (ws, we)
                };
                if layers == 2 && e1 - s1 != we - ws && memchr::memchr(b'%', &v1[s1..e1]).is_some()
                {
                    let mut mid = Vec::new();
                    self.run_rule(r, &v1, s1, e1, &mut mid);
                    for mut h in mid {
                        (h.start, h.end) = (m1.map(h.start), m1.map(h.end));
                        h.encoding = "escaped".into();
                        out.push(h);
                    }
                }
                let (s0, e0) = (m1.map(s1), m1.map(e1));
                // Only percent-escapes are worth matching in encoded form (URLs, forms); JSON
                // escapes are not how anyone writes a credential pattern.
                let pct = memchr::memchr(b'%', &hay[s0..e0]).is_some();
                if pct && (e0 - s0 != e1 - s1 || (layers == 2 && e1 - s1 != we - ws)) {
                    self.run_rule(r, hay, s0, e0, out);
                }
            }
        }
    }

    /// Decodes every base64 run at its four alignments and every long hex run at its two, and
    /// scans the results one level deeper.
    fn scan_runs(&self, view: &[u8], depth: u8, out: &mut Vec<Hit>) {
        let mut chars_buf = Vec::new();
        let mut cmap = PosMap::default();
        let mut dec = Vec::new();
        let mut sub = Vec::new();
        base64::find_runs(view, |run| {
            let chars = base64::compact(view, run, &mut chars_buf, &mut cmap);
            if plausible_base64(chars) {
                for align in 0..4 {
                    base64::decode(chars, align, &mut dec);
                    if dec.len() < MIN_DECODED {
                        continue;
                    }
                    sub.clear();
                    self.scan_depth(&dec, false, depth + 1, &mut sub);
                    for h in sub.drain(..) {
                        let start = cmap.map(base64::char_start(h.start, align));
                        let end = cmap.map(base64::char_end(h.end, align).min(chars.len()));
                        out.push(Hit {
                            start,
                            end,
                            encoding: join("base64", &h.encoding),
                            ..h
                        });
                    }
                }
            }
            hex::hex_subruns(chars, |a, b| {
                for align in 0..2 {
                    hex::decode(&chars[a..b], align, &mut dec);
                    sub.clear();
                    self.scan_depth(&dec, false, depth + 1, &mut sub);
                    for h in sub.drain(..) {
                        let start = cmap.map(a + align + 2 * h.start);
                        let end = cmap.map((a + align + 2 * h.end).min(b));
                        out.push(Hit {
                            start,
                            end,
                            encoding: join("hex", &h.encoding),
                            ..h
                        });
                    }
                }
            });
        });
    }

    /// Prefilter: known-secret hits go straight to `out`; returns the merged `(rule, start, end)`
    /// windows (sorted) in which each triggered rule's regex must run.
    fn windows(&self, view: &[u8], out: &mut Vec<Hit>) -> Vec<(u32, usize, usize)> {
        let mut wins: Vec<(u32, usize, usize)> = Vec::new();
        self.prefilter.for_each_hit(view, |s, e, targets| {
            for t in targets {
                match *t {
                    Target::Rule(r) => {
                        let w = self.rules[r as usize].window;
                        wins.push((r, s.saturating_sub(w), (e + w).min(view.len())));
                    }
                    Target::Known(k) => out.push(Hit {
                        target: Target::Known(k),
                        start: s,
                        end: e,
                        preview: finding::preview(&view[s..e]),
                        encoding: String::new(),
                        validated: None,
                    }),
                }
            }
        });
        for &r in &self.keywordless {
            wins.push((r, 0, view.len()));
        }
        wins.sort_unstable();
        let mut merged: Vec<(u32, usize, usize)> = Vec::with_capacity(wins.len());
        for (r, s, e) in wins {
            match merged.last_mut() {
                Some(last) if last.0 == r && s <= last.2 => last.2 = last.2.max(e),
                _ => merged.push((r, s, e)),
            }
        }
        merged
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
                preview: finding::preview(&view[ms..me]),
                encoding: String::new(),
                validated: rule.validator.check(secret),
            });
        };
        match rule.secret_group {
            None => {
                for m in rule.regex.find_iter(input) {
                    accept(m.start(), m.end(), (m.start(), m.end()));
                }
            }
            Some(g) => {
                for caps in rule.regex.captures_iter(input) {
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

fn join(outer: &str, inner: &str) -> String {
    if inner.is_empty() {
        outer.to_string()
    } else {
        format!("{outer}+{inner}")
    }
}

/// Whether a run can be base64 at all: not pure hex (hashes, git ids: the hex layer takes them),
/// not hex-and-dashes (UUIDs), and not mixing the two alphabets' extra characters (`/` with `-`,
/// as in paths and URLs). Encoders emit one alphabet, so this loses nothing real.
fn plausible_base64(chars: &[u8]) -> bool {
    let (mut std_extra, mut url_extra, mut non_hex) = (false, false, false);
    for &b in chars {
        match b {
            b'+' | b'/' => std_extra = true,
            b'-' | b'_' => url_extra = true,
            _ if escape::hexval(b).is_none() => non_hex = true,
            _ => {}
        }
    }
    non_hex && !(std_extra && url_extra)
}
