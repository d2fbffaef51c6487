//! Bytes that every match of a regex must contain, read off its syntax tree.
//!
//! Why: a keyword hit only says where to look. Running a rule's regex (or a gate shared by
//! several rules) over its window is the expensive part of confirmation; when the regex needs a
//! byte that the keyword itself does not supply (the `@` of `scheme://user:pass@host`), one
//! `memchr` over the window rules the window out first. On LLM-style JSON most `://` hits are
//! plain links, so this replaces a lazy-DFA pass over ~400 bytes per link with a vector scan.
//!
//! Soundness: only consuming nodes count (literals, single-byte classes, repetitions with a
//! minimum of one); alternations keep what all branches share; look-arounds and optional parts
//! contribute nothing. A match always lies inside the searched span, so a required byte that is
//! absent from the span proves there is no match there.

use regex_syntax::hir::{Class, Hir, HirKind};

/// A set of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(crate) const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    pub(crate) fn of(bytes: &[u8]) -> ByteSet {
        let mut s = ByteSet::default();
        for &b in bytes {
            s.insert(b);
        }
        s
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1u64 << (b & 63);
    }

    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1u64 << (b & 63)) != 0
    }

    pub(crate) fn union(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    pub(crate) fn intersect(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }

    pub(crate) fn minus(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] & !o.0[i]))
    }

    fn iter(self) -> impl Iterator<Item = u8> {
        (0..=255u8).filter(move |&b| self.contains(b))
    }
}

/// Bytes present in every match of `hir`.
pub(crate) fn required_bytes(hir: &Hir) -> ByteSet {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => ByteSet::default(),
        HirKind::Literal(lit) => ByteSet::of(&lit.0),
        HirKind::Class(class) => {
            single_byte(class).map_or(ByteSet::default(), |b| ByteSet::of(&[b]))
        }
        HirKind::Repetition(rep) if rep.min >= 1 => required_bytes(&rep.sub),
        HirKind::Repetition(_) => ByteSet::default(),
        HirKind::Capture(cap) => required_bytes(&cap.sub),
        HirKind::Concat(parts) => parts
            .iter()
            .fold(ByteSet::default(), |acc, h| acc.union(required_bytes(h))),
        HirKind::Alternation(branches) => branches
            .iter()
            .fold(ByteSet::ALL, |acc, h| acc.intersect(required_bytes(h))),
    }
}

fn single_byte(class: &Class) -> Option<u8> {
    match class {
        Class::Bytes(c) => match c.ranges() {
            [r] if r.start() == r.end() => Some(r.start()),
            _ => None,
        },
        Class::Unicode(c) => match c.ranges() {
            [r] if r.start() == r.end() => u8::try_from(u32::from(r.start())).ok(),
            _ => None,
        },
    }
}

/// The byte worth a `memchr` before confirming: required by the regex, not supplied by every
/// keyword (a hit already proves those are there), and the least common in ordinary text.
pub(crate) fn confirm_byte(required: ByteSet, keywords: &[String]) -> Option<u8> {
    let in_every_keyword = keywords.iter().fold(ByteSet::ALL, |acc, k| {
        acc.intersect(ByteSet::of(k.as_bytes()))
    });
    let candidates = if keywords.is_empty() {
        required
    } else {
        required.minus(in_every_keyword)
    };
    candidates
        .iter()
        .filter(|&b| rarity(b) > 0)
        .max_by_key(|&b| rarity(b))
}

/// Higher = rarer in prose, code and JSON; 0 = too common to be worth a pass.
fn rarity(b: u8) -> u8 {
    match b {
        b'@' | b'$' | b'~' | b'|' | b'^' | b'!' | b'#' | b'%' | b'&' | b'+' | b'?' | b';' => 4,
        b'=' | b'[' | b']' | b'<' | b'>' | b'*' => 3,
        b'A'..=b'Z' | b'0'..=b'9' => 2,
        b':' | b'/' | b'-' | b'_' | b'.' | b',' => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(re: &str) -> Vec<u8> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .unicode(false)
            .build()
            .parse(re)
            .unwrap();
        required_bytes(&hir).iter().collect()
    }

    #[test]
    fn consuming_nodes_count_optional_ones_do_not() {
        assert_eq!(req(r"ab"), b"ab");
        assert_eq!(req(r"a(?:b|cb)"), b"ab");
        assert_eq!(req(r"a(?:b|c)"), b"a");
        assert_eq!(req(r"x?y*z+"), b"z");
        assert_eq!(req(r"\bq{2,}[@]"), b"@q");
        assert_eq!(req(r"[ab]c"), b"c");
        assert_eq!(req(r"(?i)ab"), b"");
        assert_eq!(req(r"^$"), b"");
    }

    #[test]
    fn url_credentials_confirm_on_at_sign() {
        let re = r#"\b(?:https?|ftp)://[^/\s:@"]{0,64}:([^/\s:@"]{2,127})@[A-Za-z0-9\[]"#;
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .unicode(false)
            .build()
            .parse(re)
            .unwrap();
        let r = required_bytes(&hir);
        assert_eq!(confirm_byte(r, &["://".into()]), Some(b'@'));
        // A keyword that supplies every required byte leaves nothing to check.
        assert_eq!(confirm_byte(ByteSet::of(b"ghp_"), &["ghp_".into()]), None);
        // Only common bytes left: no pass.
        assert_eq!(confirm_byte(ByteSet::of(b"abc "), &[]), None);
    }
}
