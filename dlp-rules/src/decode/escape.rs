//! Text escapes in one pass: percent-encoding, `+` as space in forms, and JSON/JS string escapes
//! (`\/`, `\"`, `\n`, `\uXXXX` with surrogate pairs, `\xHH`). Invalid escapes are kept verbatim.

use super::PosMap;
use crate::vector::{self, BLOCK};

/// Most bytes one escape decodes to (`\uXXXX` as UTF-8); every escape yields at least one. The
/// known-secret check at escape positions (`scan/known.rs`) relies on this bound.
pub(crate) const MAX_OUTPUT: usize = 4;

/// Whether `hay` contains anything `normalize` would change.
pub(crate) fn needs_normalize(hay: &[u8], form: bool) -> bool {
    if form {
        memchr::memchr3(b'\\', b'%', b'+', hay).is_some()
    } else {
        memchr::memchr2(b'\\', b'%', hay).is_some()
    }
}

/// Whether `hay` can be scanned raw, decoding only around keyword hits (`scan/plain.rs`): no
/// `%`, and every `\` either a plain JSON escape, one that decodes to a control byte or a quote
/// (`\n \t \r \b \f \"`), or no escape at all (`\q`, a `\` at the end: kept as they are). No
/// `\\`, `\/`, `\'`, `\u` or `\x`, which decode to a `\`, a `/`, a letter or a digit. Outside
/// those escapes the decoded view holds the raw bytes, and no escape in it makes a byte a
/// keyword could hold but a quote. LLM request bodies are nearly always of this kind. Not for
/// forms (`+`). One mask of `\` and `%` per block, and a table look-up of each escape's
/// letter (measured against the same compares on every byte, 16 at a time: those cost more).
pub(crate) fn raw_safe(hay: &[u8]) -> bool {
    let mut block = 0;
    while block < hay.len() {
        let mut bits = vector::mask_from(hay, block, |b| vector::eq2_mask(b, b'\\', b'%'));
        while bits != 0 {
            let i = block + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if !safe_at(hay, i) {
                return false;
            }
        }
        block += BLOCK;
    }
    true
}

/// `raw_safe` for the byte at `p` (with the byte after it).
#[inline]
pub(crate) fn safe_at(hay: &[u8], p: usize) -> bool {
    match hay[p] {
        b'%' => false,
        b'\\' => !hay.get(p + 1).is_some_and(|&c| RAW_UNSAFE[usize::from(c)]),
        _ => true,
    }
}

/// Whether a `raw_safe` view holds an escape at all (a `\` before `n t r b f "`): else it
/// decodes to itself.
pub(crate) fn decodes_any(hay: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', hay).any(|p| {
        hay.get(p + 1)
            .is_some_and(|&c| plain_letter(c) || c == b'"')
    })
}

/// Whether a plain escape (`raw_safe`) decodes to `b`.
pub(crate) fn plain_output(b: u8) -> bool {
    matches!(b, b'\n' | b'\t' | b'\r' | 0x08 | 0x0c | b'"')
}

/// Whether `\` followed by `c` is a plain escape whose letter is a base64 char (`\n \t \r \b
/// \f`): the raw run finder drops such a letter glued in front of a run.
pub(crate) fn plain_letter(c: u8) -> bool {
    matches!(c, b'n' | b't' | b'r' | b'b' | b'f')
}

/// The bytes after a `\` that make an escape decoding to neither a control byte nor a quote.
static RAW_UNSAFE: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\\' as usize] = true;
    t[b'/' as usize] = true;
    t[b'u' as usize] = true;
    t[b'x' as usize] = true;
    t[b'\'' as usize] = true;
    t
};

/// What `normalize` learned about its input on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// Some escape was decoded (the output differs from the input).
    pub changed: bool,
    /// The input holds a `%` (decoded or not; where each one landed is in the `PosMap`). Every
    /// `%` is an escape starter the loop visits, and no escape consumes one, so this costs
    /// nothing and spares the scanner a search per confirmation window when it asks whether a
    /// window's raw bytes were percent-encoded.
    pub percent: bool,
    /// The output holds a `\` or a `%` (an escape that decoded to one, or one kept as is): a
    /// second pass could change it. Known from the escapes the loop visits anyway, where asking
    /// the output spent a `memchr2` over a whole decoded view that nearly never holds one.
    pub again: bool,
}

/// Decodes `hay` into `out` (cleared first), recording re-alignment points in `map`.
///
/// Escape starters are found a 64-byte block at a time: each block's mask is computed once and
/// its bits taken in order, so an escape costs a bit scan, not a search (JSON-encoded source
/// code has one every ~30 bytes). The text between escapes is copied when the next escape is
/// decoded; a starter that is not an escape (`%zz`, a lone `\`) stays in that text.
pub(crate) fn normalize(hay: &[u8], form: bool, out: &mut Vec<u8>, map: &mut PosMap) -> Normalized {
    let mut percent = false;
    let mut again = false;
    out.clear();
    out.reserve(hay.len() + BLOCK);
    map.clear_from(0);
    let mut changed = false;
    // Input before `pos` is in `out` or consumed by an escape.
    let mut pos = 0;
    let mut block = 0;
    while block < hay.len() {
        let mut bits = vector::mask_from(hay, block, |b| starters(b, form));
        while bits != 0 {
            let i = block + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // Inside an escape already decoded: the second `\` of `\\`, or the second half of
            // a surrogate pair (a long escape may end past this block). Never a `%`: no escape
            // consumes one.
            if i < pos {
                // Only the second `\` of `\\` lies right before `pos`: that escape wrote a
                // `\` (known here, off the hot path of the other two-byte escapes).
                again |= i + 1 == pos;
                continue;
            }
            let consumed = match hay[i] {
                b'\\' => match hay.get(i + 1).map(|&c| SIMPLE[usize::from(c)]) {
                    Some(simple) if simple != 0 => {
                        copy_text(hay, pos, i, out);
                        out.push(simple);
                        2
                    }
                    _ => {
                        let mut buf = [0u8; MAX_OUTPUT];
                        let (n, len) = backslash(&hay[i..], &mut buf);
                        if n != 0 {
                            copy_text(hay, pos, i, out);
                            out.extend_from_slice(&buf[..len]);
                            again |= buf[..len].iter().any(|&b| b == b'\\' || b == b'%');
                        } else {
                            // Kept as is, with the text around it.
                            again = true;
                        }
                        n
                    }
                },
                b'%' => {
                    percent = true;
                    match (
                        hay.get(i + 1).and_then(|&b| hexval(b)),
                        hay.get(i + 2).and_then(|&b| hexval(b)),
                    ) {
                        (Some(h), Some(l)) => {
                            copy_text(hay, pos, i, out);
                            map.push_percent(out.len());
                            let b = h << 4 | l;
                            out.push(b);
                            again |= b == b'\\' || b == b'%';
                            3
                        }
                        _ => {
                            // Kept as is: it will be copied with the text before the next escape.
                            map.push_percent(out.len() + (i - pos));
                            again = true;
                            0
                        }
                    }
                }
                // `+`, only ever a starter in a form.
                _ => {
                    copy_text(hay, pos, i, out);
                    out.push(b' ');
                    1
                }
            };
            if consumed != 0 {
                pos = i + consumed;
                changed = true;
                if consumed > 1 {
                    map.push(out.len(), pos);
                }
            }
        }
        block += BLOCK;
    }
    out.extend_from_slice(hay.get(pos..).unwrap_or(&[]));
    Normalized {
        changed,
        percent,
        again,
    }
}

/// The earliest parent position at which the starter of the escape between two consecutive
/// checkpoints of `normalize`'s map (`(view, parent)` before and after it) can lie. Exact for the
/// escapes that shrink the text by one byte (`\n`, `\"` and the other two-byte escapes: 2 -> 1)
/// or by two (`%XX`: 3 -> 1), which no other escape does (`\xHH` shrinks by 3, `\uXXXX` by 3 to 5,
/// a surrogate pair by 8); for those a bound from `MAX_OUTPUT`. The known-secret check looks at
/// the positions after the starter (`scan/known.rs`); JSON bodies are nearly all two-byte escapes.
pub(crate) fn escape_start(before: (u32, u32), after: (u32, u32)) -> usize {
    let ((v0, p0), (v1, p1)) = (before, after);
    let (v0, p0, v1, p1) = (v0 as usize, p0 as usize, v1 as usize, p1 as usize);
    match (p1 - p0).saturating_sub(v1 - v0) {
        1 => p1 - 2,
        2 => p1 - 3,
        _ => p0 + (v1 - v0).saturating_sub(MAX_OUTPUT),
    }
}

/// Appends `hay[from..to]`, the text before an escape, to `out`. In JSON-encoded code that is
/// ~30 bytes, and a `memcpy` call per stretch cost a tenth of a scan (its branches on the
/// length, which varies from line to line, are what is slow): a stretch that fits is copied as
/// one fixed 64-byte block (a few vector moves, no branch on the length) and the copy's tail past
/// `to` dropped again. `normalize` reserves a block beyond the input, so this never reallocates.
#[inline(always)]
fn copy_text(hay: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
    match hay[from..].first_chunk::<BLOCK>() {
        Some(block) if to - from <= BLOCK => {
            let keep = out.len() + (to - from);
            out.extend_from_slice(block);
            out.truncate(keep);
        }
        _ => out.extend_from_slice(&hay[from..to]),
    }
}

/// Escape starters in a block: `\`, `%`, and `+` in a form.
#[inline(always)]
fn starters(block: &[u8; BLOCK], form: bool) -> u64 {
    let m = vector::eq2_mask(block, b'\\', b'%');
    if form {
        m | vector::eq2_mask(block, b'+', b'+')
    } else {
        m
    }
}

/// Decoded byte of the two-byte escape `\c` (0 = not a two-byte escape): a table, since LLM
/// JSON has one of these every ~80 bytes.
static SIMPLE: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'n' as usize] = b'\n';
    t[b't' as usize] = b'\t';
    t[b'r' as usize] = b'\r';
    t[b'b' as usize] = 0x08;
    t[b'f' as usize] = 0x0c;
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'/' as usize] = b'/';
    t[b'\'' as usize] = b'\'';
    t
};

/// Decodes one backslash escape at the start of `s` into `buf`; returns the bytes consumed
/// (0 = not an escape) and the bytes written. Nothing is appended to the output until the
/// escape is known to be one, so a run of non-escapes (`\|` in Markdown) copies nothing.
#[inline]
fn backslash(s: &[u8], buf: &mut [u8; MAX_OUTPUT]) -> (usize, usize) {
    let Some(&c) = s.get(1) else { return (0, 0) };
    let simple = SIMPLE[usize::from(c)];
    if simple != 0 {
        buf[0] = simple;
        return (2, 1);
    }
    match c {
        b'x' => match (
            s.get(2).and_then(|&b| hexval(b)),
            s.get(3).and_then(|&b| hexval(b)),
        ) {
            (Some(h), Some(l)) => {
                buf[0] = h << 4 | l;
                (4, 1)
            }
            _ => (0, 0),
        },
        b'u' => {
            let Some(hi) = hex4(s.get(2..6)) else {
                return (0, 0);
            };
            let (cp, used) = if (0xD800..0xDC00).contains(&hi) {
                match (s.get(6..8), hex4(s.get(8..12))) {
                    (Some(b"\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                        (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
                    }
                    _ => (0xFFFD, 6),
                }
            } else {
                (hi, 6)
            };
            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
            (used, ch.encode_utf8(buf).len())
        }
        _ => (0, 0),
    }
}

fn hex4(s: Option<&[u8]>) -> Option<u32> {
    let s = s?;
    s.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hexval(b)?)))
}

/// Value of a hex digit. A table, not a `match`: the run layer asks this of every byte of
/// every base64/hex run.
#[inline(always)]
pub(crate) fn hexval(b: u8) -> Option<u8> {
    let v = HEX[usize::from(b)];
    (v != NOT_HEX).then_some(v)
}

const NOT_HEX: u8 = 0xFF;
static HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str, form: bool) -> (String, PosMap) {
        let mut out = Vec::new();
        let mut map = PosMap::default();
        normalize(s.as_bytes(), form, &mut out, &mut map);
        (String::from_utf8_lossy(&out).into_owned(), map)
    }

    /// The reference's output, checkpoints, whether anything changed, and the parent position
    /// of each checkpoint's escape starter.
    type Reference = (Vec<u8>, Vec<(u32, u32)>, bool, Vec<usize>);

    /// The byte-at-a-time reference the block-mask loop must agree with: same output, same
    /// position map, same `changed`, on inputs dense with escapes of every kind and at every
    /// offset relative to the 64-byte blocks.
    fn normalize_ref(hay: &[u8], form: bool) -> Reference {
        let mut out = Vec::new();
        let mut points = Vec::new();
        let mut starters = Vec::new();
        let mut changed = false;
        let mut pos = 0;
        while pos < hay.len() {
            let c = hay[pos];
            let consumed = match c {
                b'+' if form => {
                    out.push(b' ');
                    1
                }
                b'%' => match (
                    hay.get(pos + 1).and_then(|&b| hexval(b)),
                    hay.get(pos + 2).and_then(|&b| hexval(b)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        3
                    }
                    _ => 0,
                },
                b'\\' => {
                    let mut buf = [0u8; MAX_OUTPUT];
                    let (n, len) = backslash(&hay[pos..], &mut buf);
                    out.extend_from_slice(&buf[..len]);
                    n
                }
                _ => 0,
            };
            if consumed == 0 {
                out.push(c);
                pos += 1;
            } else {
                pos += consumed;
                changed = true;
                if consumed > 1 {
                    points.push((out.len() as u32, pos as u32));
                    starters.push(pos - consumed);
                }
            }
        }
        (out, points, changed, starters)
    }

    #[test]
    fn block_loop_matches_bytewise_reference() {
        let pieces: &[&[u8]] = &[
            b"\\n",
            b"\\\"",
            b"\\\\",
            b"\\/",
            b"\\u0041",
            b"\\ud83d\\ude00",
            b"\\x41",
            b"\\q",
            b"%41",
            b"%4",
            b"%zz",
            b"%5C",
            b"%25",
            b"\\u005c",
            b"\\x25",
            b"+",
            b"\\",
            b"%",
            b"abc",
            b"0123456789abcdef0123456789",
            b" ",
            b"\xff",
        ];
        let mut rng = crate::testgen::Lcg::new(11);
        for case in 0..3000usize {
            let mut hay = Vec::new();
            let target = case % 400;
            while hay.len() < target {
                hay.extend_from_slice(rng.pick(pieces));
            }
            for form in [false, true] {
                let mut out = Vec::new();
                let mut map = PosMap::default();
                let Normalized {
                    changed,
                    percent,
                    again,
                } = normalize(&hay, form, &mut out, &mut map);
                assert_eq!(percent, hay.contains(&b'%'), "case {case} form {form}");
                assert_eq!(
                    again,
                    needs_normalize(&out, false),
                    "case {case} form {form}"
                );
                let (want, points, want_changed, starters) = normalize_ref(&hay, form);
                assert_eq!(out, want, "case {case} form {form}");
                assert_eq!(changed, want_changed, "case {case} form {form}");
                assert_eq!(map.points[1..], points[..], "case {case} form {form}");
                assert_eq!(map.map(out.len()), hay.len(), "case {case} form {form}");
                // `escape_start` never lies after an escape's starter, and is the starter itself
                // for the escapes that shrink the text by one or two bytes.
                for (k, w) in map.points.windows(2).enumerate() {
                    let start = escape_start(w[0], w[1]);
                    let shrink = (w[1].1 - w[0].1) - (w[1].0 - w[0].0);
                    assert!(start <= starters[k], "case {case} form {form} escape {k}");
                    if shrink <= 2 {
                        assert_eq!(start, starters[k], "case {case} form {form} escape {k}");
                    }
                }
                // `percent_in` answers what searching the mapped-back raw stretch would.
                for _ in 0..20 {
                    let a = (rng.next() >> 33) as usize % (out.len() + 1);
                    let b = a + (rng.next() >> 33) as usize % (out.len() - a + 1);
                    let raw = &hay[map.map(a)..map.map(b)];
                    assert_eq!(
                        map.percent_in(a, b),
                        raw.contains(&b'%'),
                        "case {case} form {form} {a}..{b}"
                    );
                }
            }
        }
    }

    #[test]
    fn hex_table() {
        for b in 0..=255u8 {
            let want = match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                b'A'..=b'F' => Some(b - b'A' + 10),
                _ => None,
            };
            assert_eq!(hexval(b), want, "{b:#x}");
        }
    }

    #[test]
    fn percent_and_plus() {
        assert_eq!(norm("a%41b%zz%4", false).0, "aAb%zz%4");
        assert_eq!(norm("a+b%2Bc", true).0, "a b+c");
        assert_eq!(norm("a+b", false).0, "a+b");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            norm(
                r#"https:\/\/x \"q\" \n\t \\n \u0041\u00e9 \ud83d\ude00 \x41 \q"#,
                false
            )
            .0,
            "https://x \"q\" \n\t \\n A\u{e9} \u{1F600} A \\q"
        );
        assert_eq!(norm(r"\ud800x", false).0, "\u{FFFD}x");
    }

    #[test]
    fn positions_map_back() {
        let raw = "ab%41%42cd\\u0045f";
        let (dec, map) = norm(raw, false);
        assert_eq!(dec, "abABcdEf");
        assert_eq!(map.map(0), 0);
        assert_eq!(map.map(2), 2); // 'A' starts at the first %41
        assert_eq!(map.map(3), 5); // 'B'
        assert_eq!(map.map(4), 8); // 'c'
        assert_eq!(map.map(6), 10); // 'E' at the \u escape
        assert_eq!(map.map(7), 16); // 'f'
        assert_eq!(map.map(8), raw.len()); // exclusive end
    }
}
