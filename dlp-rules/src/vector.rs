//! The scanner's vector code, in one place: byte-class bitmasks of 64-byte blocks (bit `i` of a
//! mask says whether byte `i` belongs to the class) and the keyword prefilter's gram hashes,
//! eight per 16-byte step. The run finders, the text-run test and the escape layer look at whole
//! blocks through these masks, so the common case (prose, JSON, code: no long run, no escape
//! nearby) costs a few vector compares per 16 bytes instead of a branch per byte.
//!
//! On x86_64 the masks come from SSE2, which every x86_64 CPU has, through `safe_arch` (the
//! intrinsics behind safe signatures, compiled in only when the build targets the feature), so
//! this crate keeps `unsafe_code = forbid`. Other targets use the scalar twins, which the tests
//! check the vector code against, byte value by byte value (only the x86_64 build is exercised
//! here).

/// Bytes per block (one bit each in a `u64`).
pub(crate) const BLOCK: usize = 64;

/// `mask` of the 64 bytes of `hay` from `pos`; bytes past the end are zero, which no class
/// holds, so their bits are clear. A whole block is classified in place, only the tail copied.
#[inline(always)]
pub(crate) fn mask_from<T>(hay: &[u8], pos: usize, mask: impl Fn(&[u8; BLOCK]) -> T) -> T {
    match hay
        .get(pos..pos + BLOCK)
        .and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
    {
        Some(block) => mask(block),
        None => {
            let mut block = [0u8; BLOCK];
            let tail = hay.get(pos..).unwrap_or(&[]);
            block[..tail.len()].copy_from_slice(tail);
            mask(&block)
        }
    }
}

/// A string that may continue in memory: `buf[..len]` is the string, and whatever follows it in
/// `buf` belongs to something else. Its blocks are classified in place whenever `buf` holds 64
/// bytes from the block's start, the caller clearing the bits at or past the end (`keep`);
/// `mask_from` on the string alone would copy every block that crosses its end into a zeroed
/// one. For the short runs of the run layer (git ids, identifiers) that was every block: three
/// copies per run, each read back before its stores had retired.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Within<'a> {
    buf: &'a [u8],
    len: usize,
}

impl<'a> Within<'a> {
    /// `buf[..len]`, followed by the rest of `buf` (`len` is capped at `buf.len()`).
    pub(crate) fn new(buf: &'a [u8], len: usize) -> Self {
        Within {
            buf,
            len: len.min(buf.len()),
        }
    }

    /// The whole of `s`, nothing after it.
    #[cfg(test)]
    pub(crate) fn whole(s: &'a [u8]) -> Self {
        Within::new(s, s.len())
    }

    pub(crate) fn bytes(&self) -> &'a [u8] {
        &self.buf[..self.len]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `self.bytes()[a..b]`, still followed by the rest of `buf`.
    pub(crate) fn sub(&self, a: usize, b: usize) -> Within<'a> {
        let a = a.min(self.len);
        Within::new(&self.buf[a..], b.min(self.len).saturating_sub(a))
    }

    /// `mask` of the 64 bytes from `pos`, bytes past the string included: AND with `keep(pos)`.
    #[inline(always)]
    pub(crate) fn mask<T>(&self, pos: usize, mask: impl Fn(&[u8; BLOCK]) -> T) -> T {
        mask_from(self.buf, pos, mask)
    }

    /// The bits of the block from `pos` that lie inside the string.
    #[inline(always)]
    pub(crate) fn keep(&self, pos: usize) -> u64 {
        let n = self.len.saturating_sub(pos);
        if n >= BLOCK {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    }
}

/// Bits `j` of `m` such that bits `j..j + n` are all set (`1 <= n <= 64`): runs of set bits
/// are measured by doubling (`r & r >> len` holds runs of `2 * len`), then topped up to `n`.
/// With a constant `n` this unrolls to a handful of shifts.
#[inline(always)]
pub(crate) fn run_starts(m: u64, n: u32) -> u64 {
    let mut r = m;
    let mut len = 1;
    while len * 2 <= n {
        r &= r >> len;
        len *= 2;
    }
    if len < n {
        r &= r >> (n - len);
    }
    r
}

/// Base64 characters of either alphabet: `A-Z a-z 0-9 + / - _`.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn base64_scalar(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10)
        | ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b == b'+')
        | (b == b'/')
        | (b == b'-')
        | (b == b'_')
}

/// Bit `i` set when `block[i]` is a base64 character.
#[inline(always)]
pub(crate) fn base64_mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::base64_mask(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_mask(block, base64_scalar)
    }
}

/// Bytes `0x2B..=0x7F`, a superset of the base64 characters that one signed compare finds:
/// space, quotes, parentheses, control bytes and non-ASCII fall outside. A block with no run
/// of 20 such bytes holds no base64 run, and in prose and JSON most blocks have none, so the
/// run finder classifies them with this instead of the full base64 class.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn wide_scalar(b: u8) -> bool {
    (0x2B..0x80).contains(&b)
}

/// Bit `i` set when `block[i]` is in `0x2B..=0x7F` (`wide_scalar`).
#[inline(always)]
pub(crate) fn wide_mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::wide_mask(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_mask(block, wide_scalar)
    }
}

/// Hex digits `0-9 a-f A-F`.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn hex_scalar(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 6)
}

/// Bit `i` set when `block[i]` is a hex digit.
#[inline(always)]
pub(crate) fn hex_mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::hex_mask(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_mask(block, hex_scalar)
    }
}

/// The hex digits a text byte's high nibble can be: `0` (tab, LF, CR) and `2-7`.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn text_nibble_scalar(b: u8) -> bool {
    b == b'0' || (b'2'..=b'7').contains(&b)
}

/// Bit `i` set when `block[i]` is `0` or `2-7` (`text_nibble_scalar`).
#[inline(always)]
pub(crate) fn text_nibble_mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::text_nibble_mask(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_mask(block, text_nibble_scalar)
    }
}

/// A base64 char's 6-bit value (either alphabet; 0 for a byte that is not base64).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn base64_value(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => 0,
    }
}

/// Which places of a quad a base64 char may take in an encoding of text, from its value `v`
/// (see `base64::text_alignments`): bit 0, first (the top six bits of a text byte: `v` in
/// 2..=3 for tab/LF/CR or 8..=31); bit 1, second (the next byte's high nibble, `v & 15`, is 0
/// or 2..=7); bit 2, third (the third byte's top bits, `v & 2`, are clear).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn quad_places(b: u8) -> u8 {
    let v = base64_value(b);
    let n = v & 15;
    u8::from((2..=3).contains(&v) || (8..=31).contains(&v))
        | u8::from(n == 0 || (2..=7).contains(&n)) << 1
        | u8::from(v & 2 == 0) << 2
}

/// `quad_places` of a block as three masks (first, second, third place), for base64 chars only:
/// other bytes get unspecified places (the SSE2 version does not compute their value).
#[inline(always)]
pub(crate) fn quad_place_masks(block: &[u8; BLOCK]) -> [u64; 3] {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::quad_place_masks(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        std::array::from_fn(|k| scalar_mask(block, |b| quad_places(b) >> k & 1 == 1))
    }
}

/// Printable ASCII (space..`~`) and tab, LF, CR: what decoded text is made of.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
pub(crate) fn text_scalar(b: u8) -> bool {
    (b.wrapping_sub(0x20) < 0x5f) | (b == b'\t') | (b == b'\n') | (b == b'\r')
}

/// Bit `i` set when `block[i]` is text (`text_scalar`).
#[inline(always)]
pub(crate) fn text_mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::text_mask(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_mask(block, text_scalar)
    }
}

/// Bit `i` set when `block[i]` is one of `a`, `b` (e.g. the escape starters `\` and `%`).
#[inline(always)]
pub(crate) fn eq2_mask(block: &[u8; BLOCK], a: u8, b: u8) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::eq2_mask(block, a, b)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        scalar_mask(block, |x| x == a || x == b)
    }
}

/// Hash of the 3-gram `b0 b1 b2` into 16 bits, from 16-bit multiplies so that eight of them
/// fit one SSE2 vector (the keyword prefilter's table index). Every input bit reaches the
/// index; only speed depends on how evenly text spreads over the slots.
#[inline(always)]
pub(crate) fn gram_hash(b0: u8, b1: u8, b2: u8) -> usize {
    let x = u16::from_le_bytes([b0, b1]) ^ u16::from(b2).wrapping_mul(GRAM_MIX);
    usize::from(x.wrapping_mul(GRAM_MUL))
}

/// The hash's two constants. Any odd pair is correct; these were picked (from 3 000 random
/// pairs) for how few grams of real text land on the pack keywords' anchor slots (a text gram
/// that shares a slot with an anchor costs a check like a true anchor does), with the anchors
/// chosen by measured gram counts (`prefilter/anchor.rs`). Scored on 8 MiB of Python, Rust and
/// Markdown sources, checked on the bench corpora. Counting every position, the sources hit
/// the table 83 400 times before (32 KiB, session 12's pair, anchors by character class) and
/// 31 500 times now; the bench corpora 40 300 and 4 800 times (docs/DLP.md, session 16). Rules
/// added later keep correctness; only this speed may drift.
const GRAM_MIX: u16 = 0x6487;
const GRAM_MUL: u16 = 0xA5CB;

/// `gram_hash` of the grams starting at the even offsets `0, 2, .., 14` of `chunk`, packed
/// into two words: gram `k` at bit `16 * (k % 4)` of word `k / 4`.
#[inline(always)]
pub(crate) fn even_gram_hash_words(chunk: &[u8; 18]) -> [u64; 2] {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::even_gram_hash_words(chunk)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        let word = |k: usize| {
            (k..k + 4).fold(0u64, |w, j| {
                let h = gram_hash(chunk[2 * j], chunk[2 * j + 1], chunk[2 * j + 2]);
                w | (h as u64) << (16 * (j - k))
            })
        };
        [word(0), word(4)]
    }
}

/// Gram `k` (`0..8`) of `even_gram_hash_words`.
#[inline(always)]
pub(crate) fn gram_of(words: [u64; 2], k: usize) -> usize {
    (words[k >> 2] >> (16 * (k & 3))) as usize & 0xFFFF
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn scalar_mask(block: &[u8; BLOCK], class: impl Fn(u8) -> bool) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, &b)| m | (u64::from(class(b)) << i))
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2;

#[cfg(test)]
mod tests;
