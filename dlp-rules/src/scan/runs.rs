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
    /// (raw bytes of a form, whose other runs the decoded view already covers). `escaped`: `view`
    /// is the raw bytes of a view with plain JSON escapes (`base64::find_runs_escaped`).
    pub(super) fn scan_runs(
        &self,
        view: &[u8],
        depth: u8,
        only_plus: bool,
        escaped: bool,
        out: &mut Vec<Hit>,
    ) {
        // No run fits (hex runs lie inside base64 runs): most header lines and paths end here,
        // before the buffers and the block classification are set up.
        if view.len() < base64::MIN_RUN {
            return;
        }
        let mut chars_buf = Vec::new();
        let mut cmap = PosMap::default();
        let mut dec = Vec::new();
        let mut sub = Vec::new();
        let mut text = TextView::default();
        let mut regions: [Vec<(usize, usize)>; 4] = Default::default();
        let mut starts: Vec<(usize, usize)> = Vec::new();
        base64::find_runs_in(view, escaped, |run| {
            if only_plus && memchr::memchr(b'+', &view[run.start..run.end]).is_none() {
                return;
            }
            let within = base64::compact(view, run, &mut chars_buf, &mut cmap);
            let chars = within.bytes();
            let plausible = plausible_base64(chars);
            if plausible && self.text_only && chars.len() >= base64::REGIONS_MIN {
                base64::text_regions(within, &mut regions);
                for (align, ranges) in regions.iter().enumerate() {
                    text.clear();
                    let push = |at, seg: &[u8]| text.push_segment(seg, at);
                    base64::region_segments(chars, align, ranges, &mut dec, &mut starts, push);
                    sub.clear();
                    self.scan_text(&text, depth + 1, &mut sub);
                    base64_hits(&mut sub, &cmap, chars.len(), align, out);
                }
            } else if plausible {
                let aligns = if self.text_only {
                    base64::text_alignments(within)
                } else {
                    0xF
                };
                for align in 0..4 {
                    if aligns >> align & 1 == 0 {
                        continue;
                    }
                    base64::decode(chars, align, &mut dec);
                    if dec.len() < MIN_DECODED {
                        continue;
                    }
                    sub.clear();
                    self.scan_decoded(&dec, depth + 1, &mut text, &mut sub);
                    base64_hits(&mut sub, &cmap, chars.len(), align, out);
                }
            }
            if only_plus {
                return;
            }
            hex::hex_subruns(within, |a, b| {
                let aligns = if self.text_only {
                    hex::text_alignments(within.sub(a, b))
                } else {
                    3
                };
                for align in 0..2 {
                    if aligns >> align & 1 == 0 {
                        continue;
                    }
                    hex::decode(&chars[a..b], align, &mut dec);
                    sub.clear();
                    self.scan_decoded(&dec, depth + 1, &mut text, &mut sub);
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

    /// Scans a decoded payload one level deeper, hits in payload coordinates. With `text_only`
    /// (every known secret printable ASCII, no rule matching fewer than `MIN_TEXT_RUN` bytes)
    /// only its text segments are scanned: a match in a decoded payload is reported only when
    /// it is text (printable ASCII, tab, CR, LF), which every pack example is (tested) and every
    /// known secret then is. Random bytes (images, hashes, the wrong alignments) have a short
    /// segment every few KiB, so a decoded image costs a bitmask pass instead of a full scan.
    fn scan_decoded(&self, dec: &[u8], depth: u8, text: &mut TextView, out: &mut Vec<Hit>) {
        if !self.text_only {
            self.scan_depth(dec, false, depth, out);
            return;
        }
        text.clear();
        let mut whole = false;
        filter::text_segments(dec, |a, b| {
            if a == 0 && b == dec.len() {
                whole = true;
            } else {
                text.push_segment(&dec[a..b], a);
            }
        });
        if whole {
            self.scan_depth(dec, false, depth, out);
        } else {
            self.scan_text(text, depth, out);
        }
    }

    /// Scans the joined text segments of a payload, hits in payload coordinates.
    fn scan_text(&self, text: &TextView, depth: u8, out: &mut Vec<Hit>) {
        if text.segments == 0 {
            return;
        }
        let from = out.len();
        self.scan_depth(&text.buf, false, depth, out);
        for h in &mut out[from..] {
            (h.start, h.end) = (text.map.map(h.start), text.map.map(h.end));
        }
    }
}

/// Moves the hits found in a payload decoded from `chars` chars at `align` into `out`, placed
/// at the view positions of the chars that encode them.
fn base64_hits(sub: &mut Vec<Hit>, cmap: &PosMap, chars: usize, align: usize, out: &mut Vec<Hit>) {
    for h in sub.drain(..) {
        let start = cmap.map(base64::char_start(h.start, align));
        let end = cmap.map(base64::char_end(h.end, align).min(chars));
        out.push(Hit {
            start,
            end,
            encoding: join("base64", &h.encoding),
            ..h
        });
    }
}

/// The text segments of a decoded payload joined by line breaks, and where each starts in the
/// payload.
#[derive(Default)]
pub(super) struct TextView {
    buf: Vec<u8>,
    map: PosMap,
    segments: usize,
}

impl TextView {
    fn clear(&mut self) {
        self.buf.clear();
        self.segments = 0;
    }

    /// Appends a text segment that starts at payload position `at`. Segments are joined by a
    /// line break: where a payload's text is cut by binary bytes (a protobuf field tag, an
    /// image chunk), rules see the end of a line, as their delimiters (`\s`, `$` before a line
    /// end) expect, and no keyword spans it.
    fn push_segment(&mut self, seg: &[u8], at: usize) {
        if self.segments == 0 {
            self.map.clear_from(at);
        } else {
            self.buf.push(b'\n');
            self.map.push(self.buf.len(), at);
        }
        self.buf.extend_from_slice(seg);
        self.segments += 1;
    }
}

/// Whether a run can be base64 at all: not pure hex (hashes, git ids: the hex layer takes them),
/// not hex-and-dashes (UUIDs), and not mixing the two alphabets' extra characters (`/` with `-`,
/// as in paths and URLs). Encoders emit one alphabet, so this loses nothing real.
fn plausible_base64(chars: &[u8]) -> bool {
    if chars.len() >= base64::REGIONS_MIN {
        // A long run (an image) is decided by a non-hex char near its start and two vector
        // searches, instead of a table lookup per char.
        return chars
            .iter()
            .any(|&b| RUN_CLASS[usize::from(b)] & NON_HEX != 0)
            && (memchr::memchr2(b'+', b'/', chars).is_none()
                || memchr::memchr2(b'-', b'_', chars).is_none());
    }
    let c = run_class(chars);
    c & NON_HEX != 0 && c & (STD_EXTRA | URL_EXTRA) != STD_EXTRA | URL_EXTRA
}

/// Which `plausible_base64` facts the chars establish (one OR per char).
fn run_class(chars: &[u8]) -> u8 {
    chars
        .iter()
        .fold(0u8, |acc, &b| acc | RUN_CLASS[usize::from(b)])
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
        // Long runs take the vector path: the same answers as the table.
        let mut rng = crate::testgen::Lcg::new(3);
        let mut seen = [0usize; 2];
        for case in 0..400usize {
            let len = base64::REGIONS_MIN + case % 300;
            let mut chars = rng.sparse(
                len,
                1 + case as u64 % 50,
                [&b"+/xZ"[..], b"-_xZ", b"+/-_xZ"][case % 3],
                b"0123456789abcdef",
            );
            if case % 4 == 0 {
                chars.retain(|b| b.is_ascii_hexdigit() || b"+/".contains(b));
            }
            let c = run_class(&chars);
            let want = c & NON_HEX != 0 && c & (STD_EXTRA | URL_EXTRA) != STD_EXTRA | URL_EXTRA;
            if chars.len() >= base64::REGIONS_MIN {
                assert_eq!(plausible_base64(&chars), want, "{case}");
                seen[usize::from(want)] += 1;
            }
        }
        assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
    }

    /// `scan_decoded` scans only the text segments of a decoded payload; that is sound for the
    /// embedded rules because every match of every example is text and no rule matches fewer
    /// than `MIN_TEXT_RUN` bytes (so the builtin engine keeps the shortcut).
    #[test]
    fn every_pack_example_match_is_text() {
        let e = Engine::builtin().unwrap();
        assert!(e.text_only);
        let mut checked = 0;
        for rule in &e.rules {
            assert!(rule.min_len >= filter::MIN_TEXT_RUN, "{}", rule.info.id);
            for ex in &rule.info.examples {
                for m in rule.regex().unwrap().find_iter(ex.as_bytes()) {
                    let s = &ex.as_bytes()[m.start()..m.end()];
                    assert!(
                        s.iter().all(|&b| crate::vector::text_scalar(b)),
                        "{}: {ex}",
                        rule.info.id
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= e.rules.len());
        assert!(!filter::has_text_run(b"\x00abcdefg\x01abcdefg\xff"));
        assert!(filter::has_text_run(b"\x00abc\tdefg\x01"));
    }
}
