//! Which stretches of a base64 run can decode to text, decided on the characters before any
//! decoding: the layer above scans only text segments of a decoded payload, so an alignment
//! (or, in a long run, a stretch) that cannot yield one is never decoded.

use super::decode_append;
#[cfg(test)]
use super::{INVALID, TABLE};
use crate::filter::MIN_TEXT_RUN;
use crate::vector::{self, Within, BLOCK};

/// Whole quads a text run of `MIN_TEXT_RUN` bytes always covers, and the chars they span.
const QUADS: usize = (MIN_TEXT_RUN - 2) / 3;
const TEXT_SPAN: usize = 4 * QUADS;
const _: () = assert!(QUADS >= 1 && TEXT_SPAN <= BLOCK / 2);

/// Bit `align` (0..4) set when decoding `chars[align..]` could yield `MIN_TEXT_RUN` consecutive
/// text bytes (`may_be_text`, below, for all four alignments at once). A walk per alignment
/// cost ~730 instructions for a git id joined with its next line (the run layer's commonest
/// plausible run in agent traffic) and ~300 per identifier.
pub(crate) fn text_alignments(chars: Within) -> u8 {
    let mut found = 0u8;
    text_windows(chars, |_, r| {
        // Window starts are multiples of 4, so a bit's position mod 4 is its alignment.
        for align in 0..4 {
            found |= u8::from(r & (0x1111_1111_1111_1111 << align) != 0) << align;
        }
        found != 0xF
    });
    found
}

/// Runs at least this long are decoded by regions (`text_regions`) instead of whole: an image
/// is four decodes of the whole run, of which only the stretches that may hold text are
/// scanned anyway.
pub(crate) const REGIONS_MIN: usize = 256;

/// For each alignment, the stretches of `chars` whose decoding holds every text segment (run
/// of `MIN_TEXT_RUN` text bytes) of `chars[align..]`'s decoding, as sorted, disjoint,
/// non-touching char ranges `lo..hi` with `lo` on a quad of that alignment. Each window
/// candidate (`QUADS` quads in a row that may encode text) is widened by a quad on either
/// side. Why that covers a segment: every whole triple inside it encodes text, so its quad
/// passes, and consecutive passing quads make consecutive candidates, which overlap and merge
/// into one range; the segment's partial triples at either end lie in the quads just outside
/// those, and the widening takes them in. A random run (an image) has a candidate every ~150
/// quads per alignment, so a decoded image is a few thousand short decodes instead of four
/// whole ones.
pub(crate) fn text_regions(chars: Within, regions: &mut [Vec<(usize, usize)>; 4]) {
    for r in regions.iter_mut() {
        r.clear();
    }
    text_windows(chars, |base, mut r| {
        while r != 0 {
            let j = base + r.trailing_zeros() as usize;
            r &= r - 1;
            let align = j & 3;
            // `j - 4` is the previous quad of this alignment when there is one.
            let lo = if j >= align + 4 { j - 4 } else { j };
            let hi = (j + TEXT_SPAN + 4).min(chars.len());
            let v = &mut regions[align];
            // Candidates come in ascending order per alignment, so only the last range can
            // overlap or touch the new one.
            match v.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => v.push((lo, hi)),
            }
        }
        true
    });
}

/// Calls `f(at, segment)` for the text segments of `chars[align..]`'s decoding that lie in
/// `ranges` (its `text_regions`), in order, `at` being the segment's payload position. The
/// regions are decoded back to back into `dec`, each followed by a byte that is not text so
/// that no segment spans two; `starts` records where each begins in `dec` and in the payload.
pub(crate) fn region_segments(
    chars: &[u8],
    align: usize,
    ranges: &[(usize, usize)],
    dec: &mut Vec<u8>,
    starts: &mut Vec<(usize, usize)>,
    mut f: impl FnMut(usize, &[u8]),
) {
    dec.clear();
    starts.clear();
    for &(lo, hi) in ranges {
        starts.push((dec.len(), (lo - align) / 4 * 3));
        decode_append(&chars[lo..hi], dec);
        dec.push(0);
    }
    crate::filter::text_segments(dec, |a, b| {
        let (d, p) = starts[starts.partition_point(|s| s.0 <= a) - 1];
        f(p + (a - d), &dec[a..b]);
    });
}

/// Calls `f(base, r)` for windows of 64 chars from `base` (a multiple of 4) until it returns
/// false: bit `j` of `r` is set when the quad at `base + j` starts `QUADS` whole quads in a
/// row that may encode text. On 64-char masks of the quad places each char may take
/// (`vector::quad_place_masks`), a quad at `j` can encode text when bit `j` of the first mask,
/// `j + 1` of the second and `j + 2` of the third are set, and `QUADS` such quads in a row are
/// shift-ands. Windows overlap by a span so a candidate is whole in one of them (the overlap
/// may report one twice).
fn text_windows(chars: Within, mut f: impl FnMut(usize, u64) -> bool) {
    let mut base = 0;
    while base + TEXT_SPAN <= chars.len() {
        let [first, second, third] = chars.mask(base, vector::quad_place_masks);
        let ok = first & (second >> 1) & (third >> 2);
        let mut r = ok;
        for k in 1..QUADS {
            r &= ok >> (4 * k);
        }
        // Only runs of whole quads inside `chars` (past its end are other bytes, or the zero
        // padding of a copied tail: their places say nothing).
        let room = chars.len() - base - TEXT_SPAN + 1;
        if room < BLOCK {
            r &= (1u64 << room) - 1;
        }
        if !f(base, r) {
            return;
        }
        base += BLOCK - TEXT_SPAN;
    }
}

/// Whether decoding `chars[align..]` could yield `MIN_TEXT_RUN` consecutive text bytes, decided
/// on the characters alone (`text_alignments`' definition, quad by quad: the tests' reference).
/// Such a run always holds two whole decoded triples (for a run of 8), and a triple is text only
/// if its quad's first char encodes `0x08..=0x0F` or `0x20..=0x7F` in its top six bits, the
/// second char's low four bits are 0 or 2-7 and the third char's bit 1 is clear. Random
/// alignments and hashes fail this at ~92 % of quads, so most runs are dismissed before any
/// decoding.
#[cfg(test)]
pub(crate) fn may_be_text(chars: &[u8], align: usize) -> bool {
    let quads = QUADS;
    let mut ok_in_row = 0;
    for q in chars.get(align..).unwrap_or(&[]).chunks_exact(4) {
        // Branch-free: whether a quad passes is data, not a pattern a predictor can learn.
        let ok = (QUAD_TEXT[usize::from(q[0])] & FIRST)
            & ((QUAD_TEXT[usize::from(q[1])] & SECOND) >> 1)
            & ((QUAD_TEXT[usize::from(q[2])] & THIRD) >> 2);
        ok_in_row = (ok_in_row + 1) * usize::from(ok);
        if ok_in_row >= quads {
            return true;
        }
    }
    false
}

#[cfg(test)]
const FIRST: u8 = 1;
#[cfg(test)]
const SECOND: u8 = 2;
#[cfg(test)]
const THIRD: u8 = 4;
/// Per char: the quad positions it may take in an encoding of text (the reference's table;
/// `vector::quad_place_masks` is the scan's).
#[cfg(test)]
static QUAD_TEXT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let v = TABLE[c];
        if v != INVALID {
            // Top six bits of a text byte: tab/LF/CR (0x08..=0x0F) or 0x20..=0x7F.
            if v == 2 || v == 3 || (v >= 8 && v <= 31) {
                t[c] |= FIRST;
            }
            // High nibble of the second byte: 0 (tab/LF/CR) or 2..=7.
            let nib = v & 15;
            if nib == 0 || (nib >= 2 && nib <= 7) {
                t[c] |= SECOND;
            }
            // Top two bits of the third byte: 00 or 01.
            if v & 2 == 0 {
                t[c] |= THIRD;
            }
        }
        c += 1;
    }
    t
};
