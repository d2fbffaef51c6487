//! The SSE2 side of `vector`: every function here has a scalar twin there that the tests
//! compare it with.

use safe_arch::{
    add_i8_m128i, bitand_m128i, bitandnot_m128i, bitor_m128i, bitxor_m128i, cmp_eq_mask_i8_m128i,
    cmp_gt_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
    mul_i16_keep_low_m128i, set_splat_i16_m128i, set_splat_i8_m128i,
};

use super::BLOCK;

#[inline(always)]
fn load(block: &[u8; BLOCK], at: usize) -> m128i {
    let mut b = [0u8; 16];
    b.copy_from_slice(&block[at..at + 16]);
    load_unaligned_m128i(&b)
}

#[inline(always)]
fn splat(b: u8) -> m128i {
    set_splat_i8_m128i(i8::from_ne_bytes([b]))
}

/// `lo <= v <= hi` per byte, for `lo`/`hi` below 0x80 (bytes >= 0x80 compare as negative,
/// so they are never in range).
#[inline(always)]
fn in_range(v: m128i, lo: u8, hi: u8) -> m128i {
    bitand_m128i(
        cmp_gt_mask_i8_m128i(v, splat(lo - 1)),
        cmp_lt_mask_i8_m128i(v, splat(hi + 1)),
    )
}

#[inline(always)]
fn movemask(v: m128i) -> u64 {
    u64::from(u32::from_ne_bytes(move_mask_i8_m128i(v).to_ne_bytes()) & 0xFFFF)
}

/// The 64-bit mask of a block: `class` marks the bytes of each 16-byte lane.
#[inline(always)]
fn block_mask(block: &[u8; BLOCK], class: impl Fn(m128i) -> m128i) -> u64 {
    (0..BLOCK / 16).fold(0u64, |m, k| {
        m | movemask(class(load(block, 16 * k))) << (16 * k)
    })
}

#[inline(always)]
pub(super) fn base64_mask(block: &[u8; BLOCK]) -> u64 {
    block_mask(block, |v| {
        // `b | 0x20` folds upper case onto lower case; only letters land in `a..=z`.
        let letters = in_range(bitor_m128i(v, splat(0x20)), b'a', b'z');
        // `+ , - . / 0-9` minus `,` and `.`; then `_`.
        let comma_dot = bitor_m128i(
            cmp_eq_mask_i8_m128i(v, splat(b',')),
            cmp_eq_mask_i8_m128i(v, splat(b'.')),
        );
        let digits_sym = bitandnot_m128i(comma_dot, in_range(v, b'+', b'9'));
        bitor_m128i(
            bitor_m128i(letters, digits_sym),
            cmp_eq_mask_i8_m128i(v, splat(b'_')),
        )
    })
}

/// Bytes `0x2B..=0x7F`: a signed compare, bytes >= 0x80 being negative.
#[inline(always)]
pub(super) fn wide_mask(block: &[u8; BLOCK]) -> u64 {
    block_mask(block, |v| cmp_gt_mask_i8_m128i(v, splat(0x2A)))
}

#[inline(always)]
pub(super) fn eq2_mask(block: &[u8; BLOCK], a: u8, b: u8) -> u64 {
    block_mask(block, |v| {
        bitor_m128i(
            cmp_eq_mask_i8_m128i(v, splat(a)),
            cmp_eq_mask_i8_m128i(v, splat(b)),
        )
    })
}

#[inline(always)]
pub(super) fn hex_mask(block: &[u8; BLOCK]) -> u64 {
    block_mask(block, |v| {
        bitor_m128i(
            in_range(v, b'0', b'9'),
            in_range(bitor_m128i(v, splat(0x20)), b'a', b'f'),
        )
    })
}

/// `quad_places` sixteen base64 chars at a time (other bytes get unspecified places). The value
/// by running offsets: `+ 4` is right for digits, `- 69` more from `A` on makes upper case
/// right, `- 6` more from `a` on lower case; the four symbols (62 and 63, which take no place)
/// are then set to 63. Half the work of adding each range's offset under its own range mask.
#[inline(always)]
pub(super) fn quad_place_masks(block: &[u8; BLOCK]) -> [u64; 3] {
    let mut m = [0u64; 3];
    for k in 0..BLOCK / 16 {
        let c = load(block, 16 * k);
        let under = |v: m128i, above: u8, add: u8| {
            add_i8_m128i(
                v,
                bitand_m128i(
                    cmp_gt_mask_i8_m128i(c, splat(above)),
                    splat(add.wrapping_neg()),
                ),
            )
        };
        let v = under(under(add_i8_m128i(c, splat(4)), 0x40, 69), 0x60, 6);
        let symbol = bitor_m128i(
            cmp_lt_mask_i8_m128i(c, splat(b'0')),
            cmp_eq_mask_i8_m128i(c, splat(b'_')),
        );
        let v = bitor_m128i(v, bitand_m128i(symbol, splat(63)));
        let n = bitand_m128i(v, splat(15));
        let first = bitor_m128i(in_range(v, 2, 3), in_range(v, 8, 31));
        let second = bitor_m128i(cmp_eq_mask_i8_m128i(n, splat(0)), in_range(n, 2, 7));
        let third = cmp_eq_mask_i8_m128i(bitand_m128i(v, splat(2)), splat(0));
        for (mask, class) in m.iter_mut().zip([first, second, third]) {
            *mask |= movemask(class) << (16 * k);
        }
    }
    m
}

#[inline(always)]
pub(super) fn text_nibble_mask(block: &[u8; BLOCK]) -> u64 {
    block_mask(block, |v| {
        bitor_m128i(
            in_range(v, b'2', b'7'),
            cmp_eq_mask_i8_m128i(v, splat(b'0')),
        )
    })
}

#[inline(always)]
pub(super) fn text_mask(block: &[u8; BLOCK]) -> u64 {
    block_mask(block, |v| {
        let controls = bitor_m128i(
            bitor_m128i(
                cmp_eq_mask_i8_m128i(v, splat(b'\t')),
                cmp_eq_mask_i8_m128i(v, splat(b'\n')),
            ),
            cmp_eq_mask_i8_m128i(v, splat(b'\r')),
        );
        bitor_m128i(in_range(v, 0x20, 0x7e), controls)
    })
}

/// Eight even-position grams per vector: 16-bit lane `k` of bytes `0..16` holds a gram's
/// first two bytes, the low byte of lane `k` of bytes `2..18` its third. Returned as two words
/// (two vector-to-register moves) rather than eight lanes: eight lane extractions (`pextrw`)
/// were the filter's bottleneck.
#[inline(always)]
pub(super) fn even_gram_hash_words(chunk: &[u8; 18]) -> [u64; 2] {
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&chunk[0..16]);
    b.copy_from_slice(&chunk[2..18]);
    let (v, w) = (load_unaligned_m128i(&a), load_unaligned_m128i(&b));
    let third = bitand_m128i(w, set_splat_i16_m128i(0x00FF));
    let mix = mul_i16_keep_low_m128i(
        third,
        set_splat_i16_m128i(i16::from_ne_bytes(super::GRAM_MIX.to_ne_bytes())),
    );
    let x = bitxor_m128i(v, mix);
    let h = mul_i16_keep_low_m128i(
        x,
        set_splat_i16_m128i(i16::from_ne_bytes(super::GRAM_MUL.to_ne_bytes())),
    );
    h.into()
}
