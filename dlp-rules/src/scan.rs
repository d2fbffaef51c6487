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
        let mut gated = Gated::default();
        for &(r, ws, we) in &wins {
            self.run_gated(&mut gated, r, view, ws, we, &mut local);
        }
        if depth < MAX_DEPTH {
            self.scan_runs(view, depth, false, &mut local);
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
        if layers >= 1 {
            self.raw_layers(hay, form, depth, (&v1, &m1), layers, out);
        }
        // Patterns written against the encoded form (a SAS `sig=...%3D` in a URL) must still
        // match it: each window is re-run on the lower layers wherever decoding changed its bytes.
        // Keyword hits come from the decoded view, so this costs only regex time in windows.
        if layers >= 1 {
            let (mut gated_v1, mut gated_raw) = (Gated::default(), Gated::default());
            for &(r, ws, we) in &wins {
                let (s1, e1) = if layers == 2 {
                    (m2.map(ws), m2.map(we))
                } else {
                    (ws, we)
                };
                if layers == 2 && e1 - s1 != we - ws && memchr::memchr(b'%', &v1[s1..e1]).is_some()
                {
                    let mut mid = Vec::new();
                    self.run_gated(&mut gated_v1, r, &v1, s1, e1, &mut mid);
                    for mut h in mid {
                        (h.start, h.end) = (m1.map(h.start), m1.map(h.end));
                        h.encoding = "escaped".into();
                        out.push(h);
                    }
                }
                let (s0, e0) = (m1.map(s1), m1.map(e1));
                // Only percent-escapes are worth matching in encoded form (URLs, forms); JSON
                // escapes are not how anyone writes a credential pattern.
                // In a form, `+` became a space: a secret whose alphabet holds `+` (AWS secret
                // keys, base64 material) only matches the raw bytes.
                let pct = memchr::memchr(b'%', &hay[s0..e0]).is_some();
                let plus = form && memchr::memchr(b'+', &hay[s0..e0]).is_some();
                if plus || (pct && (e0 - s0 != e1 - s1 || (layers == 2 && e1 - s1 != we - ws))) {
                    self.run_gated(&mut gated_raw, r, hay, s0, e0, out);
                }
            }
        }
    }

    /// What the escape layer can hide when its output replaces the raw view: known secrets are
    /// matched on the raw (and once-decoded) bytes too, since an escape rewritten inside or next
    /// to a literal (`+` in a form, `%4` glued to a hex encoding) breaks it in the decoded view;
    /// in a form, base64 runs holding `+` are also decoded from the raw bytes.
    fn raw_layers(
        &self,
        hay: &[u8],
        form: bool,
        depth: u8,
        (v1, m1): (&[u8], &PosMap),
        layers: u8,
        out: &mut Vec<Hit>,
    ) {
        if let Some(kf) = &self.known_filter {
            known_hits(kf, hay, out);
            if layers == 2 {
                let mut mid = Vec::new();
                known_hits(kf, v1, &mut mid);
                for mut h in mid {
                    (h.start, h.end) = (m1.map(h.start), m1.map(h.end));
                    h.encoding = "escaped".into();
                    out.push(h);
                }
            }
        }
        if form && depth < MAX_DEPTH && memchr::memchr(b'+', hay).is_some() {
            self.scan_runs(hay, depth, true, out);
        }
    }

    /// Decodes every base64 run at its four alignments and every long hex run at its two, and
    /// scans the results one level deeper. `only_plus`: just the base64 runs containing `+`
    /// (raw bytes of a form, whose other runs the decoded view already covers).
    fn scan_runs(&self, view: &[u8], depth: u8, only_plus: bool, out: &mut Vec<Hit>) {
        let mut chars_buf = Vec::new();
        let mut cmap = PosMap::default();
        let mut dec = Vec::new();
        let mut sub = Vec::new();
        base64::find_runs(view, |run| {
            if only_plus && memchr::memchr(b'+', &view[run.start..run.end]).is_none() {
                return;
            }
            let chars = base64::compact(view, run, &mut chars_buf, &mut cmap);
            if plausible_base64(chars) {
                for align in 0..4 {
                    base64::decode(chars, align, &mut dec);
                    if dec.len() < MIN_DECODED || !self.may_hold_secret(&dec) {
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
            if only_plus {
                return;
            }
            hex::hex_subruns(chars, |a, b| {
                for align in 0..2 {
                    hex::decode(&chars[a..b], align, &mut dec);
                    if !self.may_hold_secret(&dec) {
                        continue;
                    }
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

    /// Whether a decoded payload is worth scanning: every rule match and known secret is text
    /// with at least `MIN_TEXT_RUN` consecutive printable ASCII bytes (the pack examples are
    /// tested for it; non-ASCII known secrets switch the shortcut off). Random bytes (hashes,
    /// images, the wrong base64 alignments) rarely have one (38% of byte values, so ~0.04% per
    /// position), and skipping them saves a recursive scan per git id, UUID or image.
    fn may_hold_secret(&self, dec: &[u8]) -> bool {
        !self.text_only || filter::has_text_run(dec)
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
        let mut merged: Vec<(u32, usize, usize)> = Vec::with_capacity(wins.len());
        for (r, s, e) in wins {
            match merged.last_mut() {
                Some(last) if last.0 == r && s <= last.2 => last.2 = last.2.max(e),
                _ => merged.push((r, s, e)),
            }
        }
        merged
    }

    /// Runs rule `r` in `view[s..e]` unless its group gate (one search for all rules sharing
    /// its keywords) finds that no member can match there. The gate answer is kept per span, so
    /// rules with identical windows share it. Sound: a rule match in the span is a gate match.
    fn run_gated(
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

    fn group_by_rule(&self, wins: Vec<(u32, usize, usize)>) -> Vec<(u32, usize, usize)> {
        let mut starts = vec![0usize; self.rules.len() + 1];
        for w in &wins {
            starts[w.0 as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut sorted = vec![(0u32, 0usize, 0usize); wins.len()];
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
                preview: finding::preview(&view[ms..me]),
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
                preview: finding::preview(&view[s..e]),
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
type Gated = Vec<((u32, usize, usize), bool)>;

/// Whether the byte a rule (or gate) requires beyond its keyword occurs in the window; no
/// such byte means nothing to rule out.
fn present(confirm: Option<u8>, window: &[u8]) -> bool {
    confirm.is_none_or(|b| memchr::memchr(b, window).is_some())
}

/// Known-secret literal hits of `kf` in `view`, in `view` coordinates.
fn known_hits(kf: &crate::prefilter::Prefilter, view: &[u8], out: &mut Vec<Hit>) {
    kf.for_each_hit(view, |s, e, targets| {
        for t in targets {
            out.push(Hit {
                target: *t,
                start: s,
                end: e,
                preview: finding::preview(&view[s..e]),
                encoding: String::new(),
                validated: None,
            });
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `memchr` pre-check is only sound if every match holds the bytes the syntax tree says
    /// it requires: checked on every example of every embedded rule and for every gate.
    #[test]
    fn every_pack_example_match_holds_its_required_bytes() {
        let e = Engine::builtin().unwrap();
        let mut with_confirm = 0;
        for (i, rule) in e.rules.iter().enumerate() {
            with_confirm += usize::from(rule.confirm.is_some());
            let gate = e.gate_of[i].map(|g| &e.gates[g as usize]);
            for ex in &rule.info.examples {
                for m in rule.regex().unwrap().find_iter(ex.as_bytes()) {
                    let s = &ex.as_bytes()[m.start()..m.end()];
                    for b in (0..=255u8).filter(|&b| rule.required.contains(b)) {
                        assert!(
                            s.contains(&b),
                            "{}: {:?} lacks {:?}",
                            rule.info.id,
                            ex,
                            b as char
                        );
                    }
                    assert!(present(rule.confirm, s), "{}", rule.info.id);
                    assert!(
                        gate.is_none_or(|g| present(g.confirm, s)),
                        "{}",
                        rule.info.id
                    );
                }
            }
        }
        // The URL-credential gate is what this is for.
        assert!(e.gates.iter().any(|g| g.confirm == Some(b'@')));
        assert!(with_confirm > 0);
    }

    /// The shortcut in `may_hold_secret` is only sound if every match a rule can report holds a
    /// printable run: checked on every example of every embedded rule.
    #[test]
    fn every_pack_example_match_has_a_text_run() {
        let e = Engine::builtin().unwrap();
        let mut checked = 0;
        for rule in &e.rules {
            for ex in &rule.info.examples {
                for m in rule.regex().unwrap().find_iter(ex.as_bytes()) {
                    let s = &ex.as_bytes()[m.start()..m.end()];
                    assert!(filter::has_text_run(s), "{}: {ex}", rule.info.id);
                    checked += 1;
                }
            }
        }
        assert!(checked >= e.rules.len());
        assert!(!filter::has_text_run(b"\x00abcdefg\x01abcdefg\xff"));
        assert!(filter::has_text_run(b"\x00abc\tdefg\x01"));
    }
}
