//! Hex runs (`deadbeef...`): decoded at both nibble alignments, because a run may start with
//! one stray hex digit glued to it.

use super::escape::hexval;

/// Shortest hex run worth decoding (16 bytes of payload).
pub(crate) const MIN_HEX: usize = 32;

/// Maximal runs of hex digits of at least `MIN_HEX` chars inside `s`, as `(start, end)`.
pub(crate) fn hex_subruns(s: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < s.len() {
        if hexval(s[i]).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && hexval(s[i]).is_some() {
            i += 1;
        }
        if i - start >= MIN_HEX {
            f(start, i);
        }
    }
}

/// Decodes hex digits `s[align..]` (pairs) into `out`.
pub(crate) fn decode(s: &[u8], align: usize, out: &mut Vec<u8>) {
    out.clear();
    let s = s.get(align..).unwrap_or(&[]);
    for pair in s.chunks_exact(2) {
        if let (Some(h), Some(l)) = (hexval(pair[0]), hexval(pair[1])) {
            out.push(h << 4 | l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alignments() {
        let mut out = Vec::new();
        decode(b"414243", 0, &mut out);
        assert_eq!(out, b"ABC");
        decode(b"f414243", 1, &mut out);
        assert_eq!(out, b"ABC");
        let mut runs = Vec::new();
        hex_subruns(b"zz0123456789abcdef0123456789abcdef0z12", |a, b| {
            runs.push((a, b))
        });
        assert_eq!(runs, vec![(2, 35)]);
    }
}
