//! The recursive layer: base64 and hex runs decoded at every alignment and scanned one level
//! deeper, with the cheap checks that keep git ids, UUIDs and paths from costing a scan each.

use super::{join, Hit};
use crate::decode::{base64, hex, PosMap};
use crate::engine::Engine;
use crate::filter;

/// Decoded payloads shorter than this cannot hold a secret worth reporting.
const MIN_DECODED: usize = 8;

impl Engine {
    /// Decodes every base64 run at its four alignments and every long hex run at its two, and
    /// scans the results one level deeper. `only_plus`: just the base64 runs containing `+`
    /// (raw bytes of a form, whose other runs the decoded view already covers).
    pub(super) fn scan_runs(&self, view: &[u8], depth: u8, only_plus: bool, out: &mut Vec<Hit>) {
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
                    if self.text_only && !base64::may_be_text(chars, align) {
                        continue;
                    }
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
                    if self.text_only && !hex::may_be_text(&chars[a..b], align) {
                        continue;
                    }
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
}

/// Whether a run can be base64 at all: not pure hex (hashes, git ids: the hex layer takes them),
/// not hex-and-dashes (UUIDs), and not mixing the two alphabets' extra characters (`/` with `-`,
/// as in paths and URLs). Encoders emit one alphabet, so this loses nothing real.
fn plausible_base64(chars: &[u8]) -> bool {
    let c = chars
        .iter()
        .fold(0u8, |acc, &b| acc | RUN_CLASS[usize::from(b)]);
    c & NON_HEX != 0 && c & (STD_EXTRA | URL_EXTRA) != STD_EXTRA | URL_EXTRA
}

const STD_EXTRA: u8 = 1;
const URL_EXTRA: u8 = 2;
const NON_HEX: u8 = 4;
/// Per byte: which of the `plausible_base64` facts it establishes (one OR per byte).
static RUN_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'+' | b'/' => STD_EXTRA,
            b'-' | b'_' => URL_EXTRA,
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => 0,
            _ => NON_HEX,
        };
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_base64_cases() {
        assert!(plausible_base64(b"dXNlcjpwYXNzd29yZA"));
        assert!(plausible_base64(b"a+b/c0Z"));
        assert!(plausible_base64(b"a-b_c0Z"));
        assert!(!plausible_base64(
            b"9fceb02d0ae598e95dc970b74767f19372d61af8"
        ));
        assert!(!plausible_base64(b"src/lib-name/x_y"));
        assert!(!plausible_base64(b""));
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
