//! One-shot scan of a byte view: escape layer, keyword prefilter, windowed regex confirmation,
//! then base64/hex runs decoded and scanned recursively. Everything here works on a bounded
//! buffer; `stream.rs` slides that buffer over a body.

use crate::decode::{escape, PosMap};
use crate::engine::Engine;
use crate::prefilter::Target;

mod confirm;
#[cfg(all(test, feature = "bench-knobs"))]
mod core_only_tests;
pub(crate) mod known;
pub(crate) mod plain;
mod runs;

use confirm::Gated;

/// Decoding depth: raw → base64 → base64 (e.g. a base64 PEM inside a base64 JSON blob).
const MAX_DEPTH: u8 = 2;

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
        // Whether the raw view holds a `%` at all (known only when the escape layer ran; it is
        // not consulted otherwise).
        let mut pct_raw = false;
        if self.decoders() && escape::needs_normalize(hay, form) {
            // Plain JSON escapes only (the usual LLM body): decoded around keyword hits only.
            if self.plain && !form && self.scan_plain(hay, depth, out) {
                return;
            }
            let n1 = escape::normalize(hay, form, &mut v1, &mut m1);
            pct_raw = n1.percent;
            if n1.changed {
                layers = 1;
                if n1.again {
                    let n2 = escape::normalize(&v1, false, &mut v2, &mut m2);
                    if n2.changed {
                        layers = 2;
                    }
                }
            }
        }
        let view: &[u8] = match layers {
            0 => hay,
            1 => &v1,
            _ => &v2,
        };
        // Whether windows are re-run on the encoded layers below (see the end of this function).
        let rerun = layers == 2 || (layers == 1 && (pct_raw || form));
        let mut local = Vec::new();
        let wins = self.windows(view, rerun, None, &mut local);
        let mut gated = Gated::default();
        for &(r, ws, we, live) in &wins {
            if live {
                self.run_gated(&mut gated, r, view, ws, we, &mut local);
            }
        }
        if depth < MAX_DEPTH && self.decoders() {
            self.scan_runs(view, depth, false, false, &mut local);
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
            self.raw_layers(hay, form, depth, (&v1, &m1, &m2), layers, out);
        }
        // Patterns written against the encoded form (a SAS `sig=...%3D` in a URL) must still
        // match it: each window is re-run on the lower layers wherever decoding changed its bytes.
        // Keyword hits come from the decoded view, so this costs only regex time in windows.
        // Nothing to re-run when the raw view holds no `%` and is not a form and the view was
        // decoded once (JSON escapes only, the usual LLM body): skip mapping every window back.
        if rerun {
            let (mut gated_v1, mut gated_raw) = (Gated::default(), Gated::default());
            for &(r, ws, we, _) in &wins {
                let (s1, e1) = if layers == 2 {
                    (m2.map(ws), m2.map(we))
                } else {
                    (ws, we)
                };
                // Whether the bytes behind a window hold a `%` is asked of the positions where
                // the escape layer saw each `%` land (`PosMap::percent_in`), not searched for
                // after mapping the window back: in JSON-encoded code that mapping (a binary
                // search over a checkpoint per escape) was most of this loop.
                if layers == 2 && e1 - s1 != we - ws && m2.percent_in(ws, we) {
                    let mut mid = Vec::new();
                    self.run_gated(&mut gated_v1, r, &v1, s1, e1, &mut mid);
                    for mut h in mid {
                        (h.start, h.end) = (m1.map(h.start), m1.map(h.end));
                        h.encoding = "escaped".into();
                        out.push(h);
                    }
                }
                let pct = m1.percent_in(s1, e1);
                if !pct && !form {
                    continue;
                }
                let (s0, e0) = (m1.map(s1), m1.map(e1));
                // Only percent-escapes are worth matching in encoded form (URLs, forms); JSON
                // escapes are not how anyone writes a credential pattern.
                // In a form, `+` became a space: a secret whose alphabet holds `+` (AWS secret
                // keys, base64 material) only matches the raw bytes.
                let plus = form && memchr::memchr(b'+', &hay[s0..e0]).is_some();
                if plus || (pct && (e0 - s0 != e1 - s1 || (layers == 2 && e1 - s1 != we - ws))) {
                    self.run_gated(&mut gated_raw, r, hay, s0, e0, out);
                }
            }
        }
    }

    /// What the escape layer can hide when its output replaces the raw view: known secrets are
    /// matched on the raw (and once-decoded) bytes too, since an escape rewritten inside or next
    /// to a literal (`+` in a form, `\u0041` glued to a hex encoding) breaks it in the decoded view
    /// (`known.rs` says where to look);
    /// in a form, base64 runs holding `+` are also decoded from the raw bytes.
    fn raw_layers(
        &self,
        hay: &[u8],
        form: bool,
        depth: u8,
        (v1, m1, m2): (&[u8], &PosMap, &PosMap),
        layers: u8,
        out: &mut Vec<Hit>,
    ) {
        if let Some(kr) = &self.known_raw {
            kr.hits(hay, form, m1, out);
            if layers == 2 {
                let mut mid = Vec::new();
                kr.hits(v1, false, m2, &mut mid);
                for mut h in mid {
                    (h.start, h.end) = (m1.map(h.start), m1.map(h.end));
                    h.encoding = "escaped".into();
                    out.push(h);
                }
            }
        }
        if form && depth < MAX_DEPTH && memchr::memchr(b'+', hay).is_some() {
            self.scan_runs(hay, depth, true, false, out);
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
