use super::*;
use crate::vector::Within;
use ::base64::Engine as _;

/// Chars that encode text at every alignment, put right after a run in memory: they must not
/// count as part of it.
const TEXT_AFTER: &[u8] = b"dGVzdGVzdGVzdGVzdGVzdGVzdGVzdGVzdGVz";

/// The vector decoder and the table agree on every length, alignment and alphabet,
/// including runs that mix both alphabets (which the vector decoder refuses).
#[test]
fn vector_decode_matches_table() {
    let mut rng = crate::testgen::Lcg::new(11);
    let std = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let url = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut simd_used = 0;
    for case in 0..3000usize {
        let len = case % 300;
        let mut chars: Vec<u8> = (0..len)
            .map(|_| rng.pick(if case % 2 == 0 { std } else { url }))
            .collect();
        if case % 7 == 0 && len > 10 {
            chars[len / 2] = if case % 2 == 0 { b'_' } else { b'+' };
        }
        for align in 0..4 {
            let mut got = Vec::new();
            decode(&chars, align, &mut got);
            let s = chars.get(align..).unwrap_or(&[]);
            let whole = s.len() / 4 * 4;
            let mut want = vec![0; whole / 4 * 3];
            decode_scalar(&s[..whole], &mut want);
            assert_eq!(&got[..want.len()], &want[..], "case {case} align {align}");
            let mut v = vec![0; want.len()];
            if whole >= SIMD_MIN && decode_simd(&s[..whole], &mut v) {
                simd_used += 1;
            }
        }
    }
    assert!(simd_used > 1000, "{simd_used}");
}

/// `may_be_text` is a necessary condition: whenever a decoding has a text run, it said
/// yes (random char strings, and encodings of text at every alignment and offset).
#[test]
fn may_be_text_never_rejects_a_decoding_with_text() {
    let mut rng = crate::testgen::Lcg::new(5);
    let mut dec = Vec::new();
    let mut rejected = 0;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
    for case in 0..20_000usize {
        let len = 4 + case % 60;
        let chars: Vec<u8> = if case % 3 == 0 {
            // Text encoded at a random offset inside random bytes.
            let mut raw: Vec<u8> = (0..case % 7).map(|i| (i * 97) as u8).collect();
            raw.extend_from_slice(&b"token: ghp_abcdefghij"[..8 + case % 13]);
            let e = ::base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw);
            e.into_bytes()
        } else {
            (0..len).map(|_| rng.pick(alphabet)).collect()
        };
        for align in 0..4 {
            decode(&chars, align, &mut dec);
            let text = crate::filter::has_text_run(&dec);
            if !may_be_text(&chars, align) {
                assert!(!text, "{:?} align {align}", String::from_utf8_lossy(&chars));
                rejected += 1;
            }
        }
    }
    assert!(
        rejected > 20_000,
        "the check should dismiss most random runs: {rejected}"
    );
}

/// The masked version against the quad-by-quad definition: text encoded at every offset
/// and length inside random chars, and runs up to several windows long.
#[test]
fn text_alignments_match_the_quadwise_walk() {
    let mut rng = crate::testgen::Lcg::new(8);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
    let mut seen = [0usize; 16];
    for case in 0..30_000usize {
        let len = case % 250;
        let mut chars: Vec<u8> = (0..len).map(|_| rng.pick(alphabet)).collect();
        if case % 2 == 0 && len > 30 {
            let text = &b"token: ghp_abcdefghij=xyz"[..8 + case % 17];
            let e = ::base64::engine::general_purpose::STANDARD_NO_PAD.encode(text);
            let n = e.len().min(len);
            let at = (rng.next() >> 33) as usize % (len - n + 1);
            chars[at..at + n].copy_from_slice(&e.as_bytes()[..n]);
        }
        let want = (0..4).fold(0u8, |m, a| m | u8::from(may_be_text(&chars, a)) << a);
        assert_eq!(
            text_alignments(Within::whole(&chars)),
            want,
            "{}",
            String::from_utf8_lossy(&chars)
        );
        // Followed in memory by chars that encode text at every alignment, which must not
        // count.
        let more = [&chars[..], TEXT_AFTER].concat();
        assert_eq!(text_alignments(Within::new(&more, len)), want, "{case}");
        seen[usize::from(want)] += 1;
    }
    assert!(seen[0] > 1000 && seen[0xF] > 100, "{seen:?}");
    assert!(seen.iter().filter(|&&n| n > 0).count() >= 12, "{seen:?}");
}

/// Decoding only the `text_regions` yields exactly the text segments (and where they sit in
/// the payload) that decoding the whole run does, at every alignment: random payloads (images),
/// text stretches of every length at random places in them, all-text payloads, both alphabets,
/// and junk chars glued in front. The regions are sorted, disjoint, not touching, and start on
/// a quad of their alignment.
#[test]
fn text_regions_hold_every_text_segment() {
    let mut rng = crate::testgen::Lcg::new(21);
    let text = b"The quick brown fox: ghp_abcdefghij0123456789\t\r\n{\"k\": 1}";
    let mut regions: [Vec<(usize, usize)>; 4] = Default::default();
    let (mut whole, mut piece, mut starts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut segments, mut skipped) = (0usize, 0usize);
    for case in 0..4000usize {
        let len = 6 + case % 900;
        let mut raw: Vec<u8> = (0..len).map(|_| (rng.next() >> 56) as u8).collect();
        if case % 9 == 0 {
            raw.fill(b'a');
        }
        for _ in 0..case % 6 {
            let at = (rng.next() >> 33) as usize % len;
            let n = ((rng.next() >> 33) as usize % 40).min(len - at);
            for b in &mut raw[at..at + n] {
                *b = rng.pick(text);
            }
        }
        let alpha = if case % 2 == 0 {
            ::base64::engine::general_purpose::STANDARD_NO_PAD
        } else {
            ::base64::engine::general_purpose::URL_SAFE_NO_PAD
        };
        let mut chars = b"QQQ"[..case % 4].to_vec();
        chars.extend_from_slice(alpha.encode(&raw).as_bytes());
        // Followed in memory by chars that encode text: the regions stay inside `chars`.
        let more = [&chars[..], TEXT_AFTER].concat();
        text_regions(Within::new(&more, chars.len()), &mut regions);
        for (align, ranges) in regions.iter().enumerate() {
            decode(&chars, align, &mut whole);
            let mut want = Vec::new();
            crate::filter::text_segments(&whole, |a, b| want.push((a, whole[a..b].to_vec())));
            let mut last_end = None;
            for &(lo, hi) in ranges {
                assert!(lo >= align && (lo - align) % 4 == 0 && lo < hi && hi <= chars.len());
                assert!(last_end.is_none_or(|e| e < lo), "{ranges:?}");
                last_end = Some(hi);
            }
            let mut got = Vec::new();
            region_segments(&chars, align, ranges, &mut piece, &mut starts, |at, seg| {
                got.push((at, seg.to_vec()));
            });
            assert_eq!(got, want, "case {case} align {align}");
            segments += want.len();
            skipped += whole.len() - ranges.iter().map(|r| (r.1 - r.0) / 4 * 3).sum::<usize>();
        }
    }
    assert!(segments > 3000, "{segments}");
    // Most of a random payload is never decoded.
    assert!(skipped > 2_000_000, "{skipped}");
}

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
    assert!((0..=255u8).all(|b| vector::base64_scalar(b) == valid(b)));
    let mut rng = crate::testgen::Lcg::new(7);
    // Delimiters the wide screen sees (space, quote), ones only the full class sees (`=.:`,
    // so a block passes the screen and its base64 runs are shorter), and both mixed.
    let delims: [&[u8]; 3] = [b" \"=.:", b"=.:", b" \""];
    for case in 0..3000 {
        // Mostly base64 chars with sparse delimiters, so runs of every length occur.
        let s = rng.sparse(
            1 + case * 7 % 700,
            2 + case as u64 % 30,
            delims[case % 3],
            b"aZ09+/-_Q",
        );
        let got: Vec<_> = runs(&s).iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(got, naive_runs(&s), "case {case}");
    }
}

/// Runs that cross a block boundary at every split, prose around them: the screen's `carry`
/// must bring the few bytes on one side to the block that holds the rest. (Session 23: a coarse
/// screen that passed over blocks without a whole wide 8-byte group dropped the carry of a
/// 16 + 7 split; the random walk above found it once in 3 000 cases, this finds it at once.)
#[test]
fn runs_across_block_boundaries_at_every_split() {
    for len in MIN_RUN..MIN_RUN + 20 {
        for start in 40..BLOCK + 8 {
            let mut s = b"the of and to in is that for it with as was on be at by ".repeat(4);
            s[start..start + len].fill(b'Q');
            s[start + len] = b' ';
            let want = naive_runs(&s);
            let got: Vec<_> = runs(&s).iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(got, want, "len {len} at {start}");
            assert!(got.iter().any(|&(a, b)| a <= start && b == start + len));
        }
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
    let chars = compact(text.as_bytes(), r[0], &mut buf, &mut map)
        .bytes()
        .to_vec();
    let mut out = Vec::new();
    decode(&chars, 0, &mut out);
    assert_eq!(out, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm");
    // Decoded byte 30 ('e') is char 40, the first char of line 2 in the view.
    assert_eq!(map.map(char_start(30, 0)), 2 + 40 + 2);
    assert_eq!(char_end(3, 0), 4);
    assert_eq!(char_end(1, 0), 2);
}

/// `compact` against a bytewise reference: wrapped runs of many lines (LF and CRLF, lines of
/// 40-96 chars, so breaks fall in every block position and a CRLF can straddle two blocks),
/// each char mapped back to its place in the view.
#[test]
fn compact_drops_the_breaks_and_maps_every_char() {
    let mut rng = crate::testgen::Lcg::new(17);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut buf, mut map) = (Vec::new(), PosMap::default());
    let mut wrapped = 0;
    for case in 0..1500usize {
        let mut text: Vec<u8> = b"key: "[..case % 6].to_vec();
        for line in 0..1 + case % 9 {
            if line > 0 {
                text.extend_from_slice(if case % 3 == 0 { b"\r\n" } else { b"\n" });
            }
            let len = 4 * (10 + (rng.next() >> 33) as usize % 15);
            text.extend((0..len).map(|_| rng.pick(alphabet)));
        }
        // Line breaks after the run, in the same block: not part of it.
        text.extend_from_slice(b" end\nZZZZ\r\n");
        for run in runs(&text) {
            let chars = compact(&text, run, &mut buf, &mut map).bytes().to_vec();
            let want: Vec<(u8, usize)> = (run.start..run.end)
                .filter(|&p| !b"\r\n".contains(&text[p]))
                .map(|p| (text[p], p))
                .collect();
            assert_eq!(chars.len(), want.len(), "case {case}");
            for (k, &(c, p)) in want.iter().enumerate() {
                assert_eq!((chars[k], map.map(k)), (c, p), "case {case} char {k}");
            }
            wrapped += usize::from(run.wrapped);
        }
    }
    assert!(wrapped > 1000, "{wrapped}");
}
