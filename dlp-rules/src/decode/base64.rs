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
    /// Found in the raw bytes of a view with plain JSON escapes (`find_runs_in`): its
    /// lines may be joined across `\n` and `\r\n` escapes as well as real line breaks.
    pub escaped: bool,
}

use crate::vector::{self, Within, BLOCK};

/// Base64 mask of the 64 bytes from `pos` (bytes past the end count as not base64).
#[inline(always)]
fn mask_at(hay: &[u8], pos: usize) -> u64 {
    vector::mask_from(hay, pos, vector::base64_mask)
}

/// First position at or after `i` that is not a base64 character (or `hay.len()`).
#[inline(always)]
fn skip_chars(hay: &[u8], mut i: usize) -> usize {
    while i < hay.len() {
        let ones = mask_at(hay, i).trailing_ones() as usize;
        if ones < BLOCK {
            return (i + ones).min(hay.len());
        }
        i += BLOCK;
    }
    hay.len()
}

/// Finds maximal runs of at least `MIN_RUN` chars (joined across wrapped lines). 64-byte blocks
/// are classified into bitmasks; a run is either 20 set bits inside a block or the set bits a
/// block starts with added to those the previous blocks ended with (`carry`). Prose and JSON,
/// whose words are short, cost one vector compare and a few shifts per block: a block is first
/// screened with the wide class (`vector::wide_mask`, a superset of base64 that one compare
/// finds), and only a block with a wide run of 20 gets the full classification. Runs are
/// measured with the masks too, never byte by byte.
#[cfg(test)]
pub(crate) fn find_runs(hay: &[u8], f: impl FnMut(Run)) {
    find_runs_in(hay, false, f);
}

/// `find_runs`, or with `escaped` over the raw bytes of a view whose only escapes are plain
/// JSON ones (`escape::raw_safe`), giving the runs the decoded view has: a run never holds an
/// escape (`\` is not base64), but one that follows an escape starts with its letter
/// (`\nQUJD`), which is left out, and the lines of wrapped base64 are joined across `\n` and
/// `\r\n` escapes as across the line breaks they decode to.
pub(crate) fn find_runs_in(hay: &[u8], escaped: bool, mut f: impl FnMut(Run)) {
    let mut pos = 0;
    // Length of the run of base64 chars ending just before `pos`. After a block passed on the
    // screen it is the wide run's length instead: an upper bound, so the screen stays sound,
    // and a run assumed to start too early is measured by `extend_right` from that start, which
    // stops at the first non-base64 byte; the stretch is then too short and the search resumes
    // past it. Cheaper than classifying the screened block again at every such boundary.
    let mut carry = 0usize;
    // `<=`: a run that fills the view up to its end is reported from the empty block past it.
    while pos <= hay.len() {
        // Inside a long run (a blob: `carry` already `MIN_RUN`) the screen cannot pass a block.
        if carry < MIN_RUN {
            let w = vector::mask_from(hay, pos, vector::wide_mask);
            if carry + (w.trailing_ones() as usize) < MIN_RUN
                && vector::run_starts(w, MIN_RUN as u32) == 0
            {
                carry = w.leading_ones() as usize;
                pos += BLOCK;
                continue;
            }
        }
        let m = mask_at(hay, pos);
        if m == u64::MAX {
            carry += BLOCK;
            pos += BLOCK;
            continue;
        }
        let lead = m.trailing_ones() as usize;
        let (a, first_end) = if carry + lead >= MIN_RUN {
            // `carry` may be the screen's upper bound, so the run is measured from its start.
            (pos - carry, skip_chars(hay, pos - carry))
        } else {
            let starts = vector::run_starts(m, MIN_RUN as u32);
            if starts == 0 {
                carry = m.leading_ones() as usize;
                pos += BLOCK;
                continue;
            }
            // The lowest start is the run's first char: a run reaching back past the block
            // start would have been caught by `carry + lead`.
            let k = starts.trailing_zeros() as usize;
            // Where its first line ends is in `m` already, unless it reaches the block's end:
            // no second classification of the block from the run's start.
            let ones = (m >> k).trailing_ones() as usize;
            let end = pos + k + ones;
            (
                pos + k,
                if k + ones < BLOCK {
                    end
                } else {
                    skip_chars(hay, end)
                },
            )
        };
        // An escape's letter glued in front is not part of the decoded run.
        let a = if escaped
            && a < first_end
            && a > 0
            && hay[a - 1] == b'\\'
            && super::escape::plain_letter(hay[a])
        {
            a + 1
        } else {
            a
        };
        let (b, wrapped) = extend_right(hay, a, first_end, escaped);
        if b - a >= MIN_RUN {
            f(Run {
                start: a,
                end: b,
                wrapped,
                escaped,
            });
        }
        // Resume just past the run: `hay[b]` is not part of any run we still have to report.
        pos = b + 1;
        carry = 0;
    }
}

/// The end of the run that starts at `start` and whose first line ends at `first_end` (the first
/// byte there that is not base64), with the lines that continue it as wrapped base64.
fn extend_right(hay: &[u8], start: usize, first_end: usize, escaped: bool) -> (usize, bool) {
    let mut line_start = start;
    let mut i = first_end;
    let mut wrapped = false;
    loop {
        let line = i - line_start;
        // A first line cut by the start of the view (the stream's previous segment) is a suffix
        // of a whole line; the four decoding alignments absorb its unknown length.
        let cut = line_start == 0 && !wrapped;
        if !cut && (line < MIN_WRAPPED_LINE || line & 3 != 0) {
            return (i, wrapped);
        }
        let j = line_break(hay, i, b'\r', escaped).unwrap_or(i);
        let Some(j) = line_break(hay, j, b'\n', escaped) else {
            return (i, wrapped);
        };
        if !hay.get(j).is_some_and(|&b| valid(b)) {
            return (i, wrapped);
        }
        wrapped = true;
        line_start = j;
        i = skip_chars(hay, line_start);
    }
}

/// The position after the line-break byte `b` (`\r` or `\n`) at `at`, or after its escape
/// (`\\r`, `\\n`) where `escaped`.
#[inline]
fn line_break(hay: &[u8], at: usize, b: u8, escaped: bool) -> Option<usize> {
    match hay.get(at..) {
        Some([c, ..]) if *c == b => Some(at + 1),
        Some([b'\\', c, ..]) if escaped && *c == (if b == b'\n' { b'n' } else { b'r' }) => {
            Some(at + 2)
        }
        _ => None,
    }
}

/// The run's characters with line breaks removed (borrowed when there are none), and a map from
/// character index to view position. Either way they are followed in memory by at least a
/// block's worth of bytes when the view has them (`Within`): the rest of the view, or the
/// padding after a copy, so that their masks are read in place.
pub(crate) fn compact<'a>(
    hay: &'a [u8],
    run: Run,
    buf: &'a mut Vec<u8>,
    map: &mut PosMap,
) -> Within<'a> {
    map.clear_from(run.start);
    if !run.wrapped {
        return Within::new(&hay[run.start..], run.end - run.start);
    }
    buf.clear();
    // Lines are copied whole between the breaks (40+ chars each), not byte by byte; the breaks
    // come from 64-byte masks (the commonest wrapped run, a git id joined with the next line,
    // is one block: a `memchr2` iterator cost two searches' set-up for it).
    let view = Within::new(hay, run.end);
    let mut i = run.start;
    let mut pos = run.start;
    while pos < run.end {
        let mut breaks = view.mask(pos, |b| vector::eq2_mask(b, b'\r', b'\n'));
        if run.escaped {
            breaks |= view.mask(pos, |b| vector::eq2_mask(b, b'\\', b'\\'));
        }
        breaks &= view.keep(pos);
        while breaks != 0 {
            let at = pos + breaks.trailing_zeros() as usize;
            breaks &= breaks - 1;
            buf.extend_from_slice(&hay[i..at]);
            // A `\n` or `\r` escape (a wrapped run holds no other `\`): both bytes go.
            let escape = hay[at] == b'\\';
            i = at + 1 + usize::from(escape);
            if hay[at] == b'\n' || (escape && hay.get(at + 1) == Some(&b'n')) {
                map.push(buf.len(), i);
            }
        }
        pos += BLOCK;
    }
    buf.extend_from_slice(&hay[i..run.end]);
    let len = buf.len();
    buf.resize(len + BLOCK, 0);
    Within::new(buf, len)
}

/// Decodes `chars[align..]` into `out` (lenient: both alphabets, trailing partial quantum kept).
pub(crate) fn decode(chars: &[u8], align: usize, out: &mut Vec<u8>) {
    out.clear();
    decode_append(chars.get(align..).unwrap_or(&[]), out);
}

/// Decodes `s` (from its first char) onto the end of `out`.
pub(crate) fn decode_append(s: &[u8], out: &mut Vec<u8>) {
    // Sized once and filled by index: a per-quad `extend_from_slice` paid a capacity check per
    // three bytes, which was most of a long run's decode (base64 images).
    let whole = s.len() / 4 * 4;
    let at = out.len();
    out.resize(at + whole / 4 * 3, 0);
    let (quads, rem) = s.split_at(whole);
    if whole < SIMD_MIN || !decode_simd(quads, &mut out[at..]) {
        decode_scalar(quads, &mut out[at..]);
    }
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

/// Runs shorter than this are decoded by the scalar loop (a git id, a token): the vector
/// decoder's set-up is not worth it.
const SIMD_MIN: usize = 64;

/// Whole quads through `base64-simd` (vector code chosen at run time: a decoded image is four
/// decodes of the whole run). It takes one alphabet per call and refuses a run mixing both
/// (then the caller decodes it by table); `plausible_base64` already dismisses most of those.
fn decode_simd(quads: &[u8], out: &mut [u8]) -> bool {
    let b64 = if memchr::memchr2(b'-', b'_', quads).is_some() {
        &base64_simd::URL_SAFE_NO_PAD
    } else {
        &base64_simd::STANDARD_NO_PAD
    };
    b64.decode(quads, base64_simd::Out::from_slice(out)).is_ok()
}

/// Whole quads by table, both alphabets at once.
fn decode_scalar(quads: &[u8], out: &mut [u8]) {
    for (o, q) in out.chunks_exact_mut(3).zip(quads.chunks_exact(4)) {
        let n = u32::from(TABLE[usize::from(q[0])]) << 18
            | u32::from(TABLE[usize::from(q[1])]) << 12
            | u32::from(TABLE[usize::from(q[2])]) << 6
            | u32::from(TABLE[usize::from(q[3])]);
        o[0] = (n >> 16) as u8;
        o[1] = (n >> 8) as u8;
        o[2] = n as u8;
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
mod tests;
mod text;

#[cfg(test)]
pub(crate) use text::may_be_text;
pub(crate) use text::{region_segments, text_alignments, text_regions, REGIONS_MIN};
