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

/// Whether `b` is a base64 character of either alphabet, branch-free so that the block
/// classifier below compiles to SIMD compares (the table is for decoding).
#[inline(always)]
fn valid_arith(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10)
        | ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b == b'+')
        | (b == b'/')
        | (b == b'-')
        | (b == b'_')
}

const BLOCK: usize = 64;

/// Bit `i` set iff `block[i]` is a base64 character. The byte loop vectorizes; eight
/// multiplies gather the 0/1 bytes into bits. `Err` when no aligned 8-byte word is all base64
/// and the previous block's last word was not either (`prev_tail`): a run of `MIN_RUN` holds a
/// whole aligned word, so no run can have its 20th char here (prose skips the gathering). The
/// `Err` holds the bits of the last word only, all a run continuing into the next block needs.
#[inline(always)]
fn classify(block: &[u8; BLOCK], prev_tail: bool) -> Result<u64, u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut flags = [0u8; BLOCK];
    for (f, &b) in flags.iter_mut().zip(block.iter()) {
        *f = u8::from(valid_arith(b));
    }
    let mut words = [0u64; BLOCK / 8];
    let mut any_full = prev_tail;
    for (w, c) in words.iter_mut().zip(flags.chunks_exact(8)) {
        let mut b8 = [0u8; 8];
        b8.copy_from_slice(c);
        *w = u64::from_le_bytes(b8);
        any_full |= *w == ONES;
    }
    if !any_full {
        return Err((words[BLOCK / 8 - 1].wrapping_mul(0x0102_0408_1020_4080) >> 56) << 56);
    }
    let mut m = 0u64;
    for (k, w) in words.iter().enumerate() {
        m |= (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    Ok(m)
}

/// Bits `j` of `x` such that bits `j..j + MIN_RUN` are all set.
#[inline(always)]
fn run_starts(x: u128) -> u128 {
    let r2 = x & (x >> 1);
    let r4 = r2 & (r2 >> 2);
    let r8 = r4 & (r4 >> 4);
    let r16 = r8 & (r8 >> 8);
    r16 & (r4 >> 16)
}

/// Finds maximal runs of at least `MIN_RUN` chars (joined across wrapped lines). 64-byte blocks
/// are classified into bitmasks and tested for 20 consecutive set bits (with the previous
/// block's bits carried in): prose and JSON, whose words are short, cost about one SIMD
/// classification per block; the byte-wise walk only runs where a long run really is.
pub(crate) fn find_runs(hay: &[u8], mut f: impl FnMut(Run)) {
    let mut floor = 0;
    let mut pos = 0;
    let mut prev = 0u64;
    while pos < hay.len() {
        let prev_tail = prev >> 56 == 0xFF;
        let m = match hay
            .get(pos..pos + BLOCK)
            .and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
        {
            Some(block) => classify(block, prev_tail),
            None => {
                let mut block = [0u8; BLOCK];
                let take = hay.len() - pos;
                block[..take].copy_from_slice(&hay[pos..]);
                classify(&block, prev_tail)
            }
        };
        let m = match m {
            Ok(m) => m,
            Err(last_word) => {
                prev = last_word;
                pos += BLOCK;
                continue;
            }
        };
        let starts = run_starts(u128::from(prev) | u128::from(m) << 64);
        // Runs whose 20th char lies in this block.
        let cand = (starts >> (64 - (MIN_RUN - 1))) as u64;
        if cand == 0 {
            prev = m;
            pos += BLOCK;
            continue;
        }
        // First such run: its start is `pos - 64 + j`, never before `floor` (prev is cleared
        // after each run).
        let j = (64 - (MIN_RUN - 1)) + cand.trailing_zeros() as usize;
        let mut a = (pos + j).saturating_sub(64).max(floor);
        while a > floor && valid(hay[a - 1]) {
            a -= 1;
        }
        let (b, wrapped) = extend_right(hay, a, a);
        if b - a >= MIN_RUN {
            f(Run {
                start: a,
                end: b,
                wrapped,
            });
        }
        floor = b;
        // Resume just past the run: `hay[b]` is not part of any run we still have to report.
        pos = b + 1;
        prev = 0;
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

    /// The reference: a byte-wise walk for maximal runs (no line joining).
    fn naive_runs(s: &[u8]) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let a = i;
            while i < s.len() && valid(s[i]) {
                i += 1;
            }
            if i - a >= MIN_RUN {
                v.push((a, i));
            }
            i += 1;
        }
        v
    }

    #[test]
    fn block_classifier_matches_bytewise_walk() {
        assert!((0..=255u8).all(|b| valid_arith(b) == valid(b)));
        let mut seed = 7u64;
        for case in 0..3000 {
            let len = 1 + case * 7 % 700;
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    // Mostly base64 chars with sparse delimiters, so runs of every length occur.
                    if (seed >> 40).is_multiple_of(2 + case as u64 % 30) {
                        b" \"=.:"[(seed >> 20) as usize % 5]
                    } else {
                        b"aZ09+/-_Q"[(seed >> 24) as usize % 9]
                    }
                })
                .collect();
            let got: Vec<_> = runs(&s).iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(got, naive_runs(&s), "case {case}");
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
