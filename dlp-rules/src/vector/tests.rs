use super::*;

/// Every byte value at every position of a block, against the scalar definition.
#[test]
fn vector_masks_match_scalar_for_every_byte_at_every_position() {
    for v in 0..=255u8 {
        for pos in 0..BLOCK {
            let mut block = [b' '; BLOCK];
            block[pos] = v;
            let want = scalar_mask(&block, base64_scalar);
            assert_eq!(base64_mask(&block), want, "byte {v:#x} at {pos}");
            assert_eq!(text_mask(&block), scalar_mask(&block, text_scalar));
            assert_eq!(hex_mask(&block), scalar_mask(&block, hex_scalar));
            assert_eq!(wide_mask(&block), scalar_mask(&block, wide_scalar));
            assert_eq!(
                text_nibble_mask(&block),
                scalar_mask(&block, text_nibble_scalar)
            );
            // Quad places are defined for base64 chars (a compacted run is nothing else).
            if base64_scalar(v) {
                let mut block = [b'A'; BLOCK];
                block[pos] = v;
                let places = quad_place_masks(&block);
                for (k, &m) in places.iter().enumerate() {
                    let want = scalar_mask(&block, |b| quad_places(b) >> k & 1 == 1);
                    assert_eq!(m, want, "byte {v:#x} at {pos} place {k}");
                }
            }
            let want = scalar_mask(&block, |x| x == b'\\' || x == b'%');
            assert_eq!(eq2_mask(&block, b'\\', b'%'), want, "byte {v:#x} at {pos}");
        }
    }
    let block: [u8; BLOCK] = std::array::from_fn(|i| (i * 37 + 11) as u8);
    assert_eq!(base64_mask(&block), scalar_mask(&block, base64_scalar));
}

#[test]
fn vector_gram_hashes_match_scalar() {
    let mut rng = crate::testgen::Lcg::new(1);
    for _ in 0..20_000 {
        let chunk: [u8; 18] = std::array::from_fn(|_| (rng.next() >> 56) as u8);
        let words = even_gram_hash_words(&chunk);
        for k in 0..8 {
            let want = gram_hash(chunk[2 * k], chunk[2 * k + 1], chunk[2 * k + 2]);
            assert_eq!(gram_of(words, k), want, "gram {k}");
        }
    }
}

#[test]
fn run_starts_match_a_bitwise_count() {
    let mut rng = crate::testgen::Lcg::new(9);
    for _ in 0..2000 {
        let seed = rng.next();
        // Dense masks, so long runs occur.
        let m = seed | seed.rotate_left(7) | seed.rotate_left(19);
        for n in 1..=64u32 {
            let want = (0..64u32)
                .filter(|&j| j + n <= 64 && (j..j + n).all(|b| m >> b & 1 == 1))
                .fold(0u64, |acc, j| acc | 1 << j);
            assert_eq!(run_starts(m, n), want, "{m:#x} n={n}");
        }
    }
    assert_eq!(run_starts(u64::MAX, 64), 1);
}

#[test]
fn base64_class_is_both_alphabets() {
    let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
    for b in 0..=255u8 {
        assert_eq!(base64_scalar(b), chars.contains(&b), "{b:#x}");
        // The run finder's screen must never drop a base64 character.
        assert!(!base64_scalar(b) || wide_scalar(b), "{b:#x}");
    }
}
