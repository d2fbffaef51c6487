//! Base64 and base64url runs, decoded at all four character alignments: a run's true start is
//! unknown (anything alphanumeric glued in front shifts it), so each alignment is tried and the
//! wrong ones simply decode to noise. Line-wrapped base64 (PEM, MIME: lines of a multiple of 4
//! chars) is joined across CR/LF so a secret spanning lines is decoded whole.

use super::PosMap;

/// Shortest run decoded (15 bytes of payload); shorter secrets are not worth the noise.
pub(crate) const MIN_RUN: usize = 20;
/// A line is joined to the next only if it is at least this long (and a multiple of 4).
const MIN_WRAPPED_LINE: usize = 40;

const INVALID: u8 = 0xFF;

/// Both alphabets at once: `+`/`-` are 62 and `/`/`_` are 63.
static TABLE: [u8; 256] = build_table();

const fn build_table() -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
}

#[inline]
fn valid(b: u8) -> bool {
    TABLE[usize::from(b)] != INVALID
}

/// A run of base64 characters in a view, possibly spanning wrapped lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: usize,
    pub end: usize,
    pub wrapped: bool,
}

/// Finds runs of at least `MIN_RUN` chars. Samples every `MIN_RUN`-th byte: a run that long must
/// cover a sample, so prose (short words) is skipped at a fraction of a byte test per byte.
pub(crate) fn find_runs(hay: &[u8], mut f: impl FnMut(Run)) {
    let mut floor = 0;
    let mut p = MIN_RUN - 1;
    while p < hay.len() {
        if !valid(hay[p]) {
            p += MIN_RUN;
            continue;
        }
        let mut a = p;
        while a > floor && valid(hay[a - 1]) {
            a -= 1;
        }
        let (b, wrapped) = extend_right(hay, a, p);
        if b - a >= MIN_RUN {
            f(Run {
                start: a,
                end: b,
                wrapped,
            });
        }
        floor = b;
        p = b + MIN_RUN;
    }
}

fn extend_right(hay: &[u8], start: usize, from: usize) -> (usize, bool) {
    let mut line_start = start;
    let mut i = from;
    let mut wrapped = false;
    loop {
        while i < hay.len() && valid(hay[i]) {
            i += 1;
        }
        let line = i - line_start;
        // A first line cut by the start of the view (the stream's previous segment) is a suffix
        // of a whole line; the four decoding alignments absorb its unknown length.
        let cut = line_start == 0 && !wrapped;
        if !cut && (line < MIN_WRAPPED_LINE || line & 3 != 0) {
            return (i, wrapped);
        }
        let mut j = i;
        if hay.get(j) == Some(&b'\r') {
            j += 1;
        }
        if hay.get(j) != Some(&b'\n') || !hay.get(j + 1).is_some_and(|&b| valid(b)) {
            return (i, wrapped);
        }
        wrapped = true;
        i = j + 1;
        line_start = i;
    }
}

/// The run's characters with line breaks removed (borrowed when there are none), and a map from
/// character index to view position.
pub(crate) fn compact<'a>(
    hay: &'a [u8],
    run: Run,
    buf: &'a mut Vec<u8>,
    map: &mut PosMap,
) -> &'a [u8] {
    map.clear_from(run.start);
    if !run.wrapped {
        return &hay[run.start..run.end];
    }
    buf.clear();
    let mut i = run.start;
    while i < run.end {
        let b = hay[i];
        if b == b'\r' || b == b'\n' {
            i += 1;
            if b == b'\n' {
                map.push(buf.len(), i);
            }
            continue;
        }
        buf.push(b);
        i += 1;
    }
    buf
}

/// Decodes `chars[align..]` into `out` (lenient: both alphabets, trailing partial quantum kept).
pub(crate) fn decode(chars: &[u8], align: usize, out: &mut Vec<u8>) {
    out.clear();
    let s = chars.get(align..).unwrap_or(&[]);
    out.reserve(s.len() / 4 * 3 + 3);
    let mut quads = s.chunks_exact(4);
    for q in &mut quads {
        let n = u32::from(TABLE[usize::from(q[0])]) << 18
            | u32::from(TABLE[usize::from(q[1])]) << 12
            | u32::from(TABLE[usize::from(q[2])]) << 6
            | u32::from(TABLE[usize::from(q[3])]);
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rem = quads.remainder();
    if rem.len() >= 2 {
        let mut n = 0u32;
        for (k, &c) in rem.iter().enumerate() {
            n |= u32::from(TABLE[usize::from(c)]) << (18 - 6 * k);
        }
        out.push((n >> 16) as u8);
        if rem.len() == 3 {
            out.push((n >> 8) as u8);
        }
    }
}

/// Character index (within the compacted run) where decoded byte `d` starts.
pub(crate) fn char_start(d: usize, align: usize) -> usize {
    align + 4 * (d / 3) + d % 3
}

/// Character index just past the last character contributing to decoded bytes `..e`.
pub(crate) fn char_end(e: usize, align: usize) -> usize {
    if e == 0 {
        return align;
    }
    let last = e - 1;
    align + 4 * (last / 3) + last % 3 + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::Engine as _;

    fn runs(s: &[u8]) -> Vec<Run> {
        let mut v = Vec::new();
        find_runs(s, |r| v.push(r));
        v
    }

    #[test]
    fn finds_runs_of_min_length_only() {
        let s = b"short words here, then QUJDREVGR0hJSktMTU5PUFFS and 0123456789abcdefghi.";
        let r = runs(s);
        assert_eq!(r.len(), 1);
        assert_eq!(&s[r[0].start..r[0].end], b"QUJDREVGR0hJSktMTU5PUFFS");
        // Exactly MIN_RUN chars at every offset is found.
        for pad in 0..30 {
            let mut t = vec![b' '; pad];
            t.extend_from_slice(&[b'A'; MIN_RUN]);
            t.push(b' ');
            assert_eq!(runs(&t).len(), 1, "pad {pad}");
        }
    }

    #[test]
    fn all_alignments_and_both_alphabets() {
        let secret = b"ghp_secret-material?>>";
        for alpha in [
            ::base64::engine::general_purpose::STANDARD_NO_PAD,
            ::base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let enc = alpha.encode(secret);
            for junk in ["", "x", "xy", "xyz"] {
                let glued = format!("{junk}{enc}");
                let found = (0..4).any(|a| {
                    let mut out = Vec::new();
                    decode(glued.as_bytes(), a, &mut out);
                    memchr::memmem::find(&out, secret).is_some()
                });
                assert!(found, "{glued}");
            }
        }
    }

    #[test]
    fn wrapped_lines_join_and_map() {
        let line1 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"; // 40 chars
        let text = format!("x {line1}\r\nZWZnaGlqa2xt\n");
        let r = runs(text.as_bytes());
        assert_eq!(r.len(), 1);
        assert!(r[0].wrapped);
        let mut buf = Vec::new();
        let mut map = PosMap::default();
        let chars = compact(text.as_bytes(), r[0], &mut buf, &mut map).to_vec();
        let mut out = Vec::new();
        decode(&chars, 0, &mut out);
        assert_eq!(out, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm");
        // Decoded byte 30 ('e') is char 40, the first char of line 2 in the view.
        assert_eq!(map.map(char_start(30, 0)), 2 + 40 + 2);
        assert_eq!(char_end(3, 0), 4);
        assert_eq!(char_end(1, 0), 2);
    }
}
