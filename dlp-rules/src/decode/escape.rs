//! Text escapes in one pass: percent-encoding, `+` as space in forms, and JSON/JS string escapes
//! (`\/`, `\"`, `\n`, `\uXXXX` with surrogate pairs, `\xHH`). Invalid escapes are kept verbatim.

use super::PosMap;

/// Whether `hay` contains anything `normalize` would change.
pub(crate) fn needs_normalize(hay: &[u8], form: bool) -> bool {
    if form {
        memchr::memchr3(b'\\', b'%', b'+', hay).is_some()
    } else {
        memchr::memchr2(b'\\', b'%', hay).is_some()
    }
}

/// Decodes `hay` into `out` (cleared first), recording re-alignment points in `map`.
/// Returns whether any escape was decoded.
pub(crate) fn normalize(hay: &[u8], form: bool, out: &mut Vec<u8>, map: &mut PosMap) -> bool {
    out.clear();
    out.reserve(hay.len());
    map.clear_from(0);
    let mut changed = false;
    let mut pos = 0;
    while pos < hay.len() {
        let next = if form {
            memchr::memchr3(b'\\', b'%', b'+', &hay[pos..])
        } else {
            memchr::memchr2(b'\\', b'%', &hay[pos..])
        };
        let Some(off) = next else {
            out.extend_from_slice(&hay[pos..]);
            break;
        };
        let i = pos + off;
        out.extend_from_slice(&hay[pos..i]);
        let consumed = match hay[i] {
            b'+' => {
                out.push(b' ');
                1
            }
            b'%' => match (
                hay.get(i + 1).and_then(|&b| hexval(b)),
                hay.get(i + 2).and_then(|&b| hexval(b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    3
                }
                _ => 0,
            },
            _ => backslash(&hay[i..], out),
        };
        if consumed == 0 {
            out.push(hay[i]);
            pos = i + 1;
        } else {
            pos = i + consumed;
            if consumed > 1 {
                changed = true;
                map.push(out.len(), pos);
            } else if hay[i] == b'+' {
                changed = true;
            }
        }
    }
    changed
}

/// Decodes one backslash escape at the start of `s`; returns bytes consumed (0 = not an escape).
fn backslash(s: &[u8], out: &mut Vec<u8>) -> usize {
    let Some(&c) = s.get(1) else { return 0 };
    let simple = match c {
        b'n' => Some(b'\n'),
        b't' => Some(b'\t'),
        b'r' => Some(b'\r'),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'/' | b'"' | b'\\' | b'\'' => Some(c),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return 2;
    }
    match c {
        b'x' => match (
            s.get(2).and_then(|&b| hexval(b)),
            s.get(3).and_then(|&b| hexval(b)),
        ) {
            (Some(h), Some(l)) => {
                out.push(h << 4 | l);
                4
            }
            _ => 0,
        },
        b'u' => {
            let Some(hi) = hex4(s.get(2..6)) else {
                return 0;
            };
            let (cp, used) = if (0xD800..0xDC00).contains(&hi) {
                match (s.get(6..8), hex4(s.get(8..12))) {
                    (Some(b"\\u"), Some(lo)) if (0xDC00..0xE000).contains(&lo) => {
                        (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
                    }
                    _ => (0xFFFD, 6),
                }
            } else {
                (hi, 6)
            };
            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            used
        }
        _ => 0,
    }
}

fn hex4(s: Option<&[u8]>) -> Option<u32> {
    let s = s?;
    s.iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | u32::from(hexval(b)?)))
}

pub(crate) fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str, form: bool) -> (String, PosMap) {
        let mut out = Vec::new();
        let mut map = PosMap::default();
        normalize(s.as_bytes(), form, &mut out, &mut map);
        (String::from_utf8_lossy(&out).into_owned(), map)
    }

    #[test]
    fn percent_and_plus() {
        assert_eq!(norm("a%41b%zz%4", false).0, "aAb%zz%4");
        assert_eq!(norm("a+b%2Bc", true).0, "a b+c");
        assert_eq!(norm("a+b", false).0, "a+b");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            norm(
                r#"https:\/\/x \"q\" \n\t \\n \u0041\u00e9 \ud83d\ude00 \x41 \q"#,
                false
            )
            .0,
            "https://x \"q\" \n\t \\n A\u{e9} \u{1F600} A \\q"
        );
        assert_eq!(norm(r"\ud800x", false).0, "\u{FFFD}x");
    }

    #[test]
    fn positions_map_back() {
        let raw = "ab%41%42cd\\u0045f";
        let (dec, map) = norm(raw, false);
        assert_eq!(dec, "abABcdEf");
        assert_eq!(map.map(0), 0);
        assert_eq!(map.map(2), 2); // 'A' starts at the first %41
        assert_eq!(map.map(3), 5); // 'B'
        assert_eq!(map.map(4), 8); // 'c'
        assert_eq!(map.map(6), 10); // 'E' at the \u escape
        assert_eq!(map.map(7), 16); // 'f'
        assert_eq!(map.map(8), raw.len()); // exclusive end
    }
}
