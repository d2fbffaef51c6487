//! The audit line written by hand, byte for byte what `serde_json::to_writer(&event)` writes
//! (the tests below compare the two). serde_json cost about 5k instructions per line, most of
//! it the generic per-field machinery, the byte-at-a-time string escaper and `SocketAddr`'s trip
//! through `Display`; this path is a few hundred. The findings (rare, already JSON values) still
//! go through serde_json.

use std::io::Write;
use std::net::SocketAddr;

use super::Event;

/// Appends `event` as one JSON object (no newline). Only the findings can fail to serialize.
pub(super) fn write_event(e: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"time\":");
    string(out, &e.time);
    out.extend_from_slice(b",\"conn\":");
    number(out, e.conn);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(e.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"client\":");
    client(out, e.client);
    out.extend_from_slice(b",\"method\":");
    string(out, &e.method);
    out.extend_from_slice(b",\"host\":");
    string(out, &e.host);
    out.extend_from_slice(b",\"port\":");
    number(out, u64::from(e.port));
    out.extend_from_slice(b",\"path\":");
    string(out, &e.path);
    out.extend_from_slice(b",\"decision\":\"");
    out.extend_from_slice(e.decision.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":");
    string(out, &e.reason);
    out.extend_from_slice(b",\"status\":");
    number(out, u64::from(e.status));
    out.extend_from_slice(b",\"bytes_up\":");
    number(out, e.bytes_up);
    out.extend_from_slice(b",\"bytes_down\":");
    number(out, e.bytes_down);
    out.extend_from_slice(b",\"duration_ms\":");
    number(out, e.duration_ms);
    if !e.findings.is_empty() {
        out.extend_from_slice(b",\"findings\":");
        serde_json::to_writer(&mut *out, &e.findings)?;
    }
    out.push(b'}');
    Ok(())
}

/// serde writes a `SocketAddr` as its `Display` string; an IPv4 one (every local client) is
/// spelled out here without the formatting machinery.
fn client(out: &mut Vec<u8>, client: Option<SocketAddr>) {
    match client {
        None => out.extend_from_slice(b"null"),
        Some(SocketAddr::V4(a)) => {
            out.push(b'"');
            for (i, o) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(out, u64::from(o));
            }
            out.push(b':');
            number(out, u64::from(a.port()));
            out.push(b'"');
        }
        // `Display` of an IPv6 address never holds a byte JSON escapes; Vec's writer cannot fail.
        Some(a) => {
            let _ = write!(out, "\"{a}\"");
        }
    }
}

/// "00" to "99": numbers are written two digits per division.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Decimal digits, as serde_json (itoa) writes them.
pub(super) fn number(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let p = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    }
    if n >= 10 {
        let p = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[p..p + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[i..]);
}

/// Whether any of the eight bytes of `w` needs escaping: below 0x20, `"` or `\` (the classic
/// "has a zero byte" / "has a byte less than n" word tricks; exact, no false positives).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below_space | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) != 0
}

/// A JSON string with serde_json's escaping: `"` and `\` backslashed, the short forms for
/// `\b \t \n \f \r`, `\u00xx` (lower-case hex) for the other control characters, everything
/// else (DEL and non-ASCII included) verbatim. Eight bytes are tested at a time; runs that need
/// no escape are copied whole.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i - 1]);
        start = i;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::{Decision, Kind};
    use super::*;

    fn same_as_serde(e: &Event) {
        let mut ours = Vec::new();
        write_event(e, &mut ours).unwrap();
        let theirs = serde_json::to_vec(e).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        let v: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        assert_eq!(v["method"].as_str(), Some(e.method.as_str()));
    }

    #[test]
    fn every_string_byte_escapes_as_serde_does() {
        let ascii: String = (0u8..0x80).map(char::from).collect();
        let odd = [
            ascii.as_str(),
            "",
            "plain",
            "q\"uote\\back",
            "\u{7f}\u{80}é漢字🦀\u{2028}\u{feff}",
            "\u{0}\u{1f}end",
            "\\\\\"\"",
        ];
        for s in odd {
            let mut e = Event::begin(u64::MAX, Kind::Route, None);
            e.time = s.to_owned();
            e.method = s.to_owned();
            e.host = s.to_owned();
            e.path = s.to_owned();
            e.reason = s.to_owned();
            same_as_serde(&e);
        }
    }

    #[test]
    fn every_field_and_variant_matches_serde() {
        let clients = [
            None,
            Some("127.0.0.1:42918".parse().unwrap()),
            Some("0.0.0.0:0".parse().unwrap()),
            Some("255.255.255.255:65535".parse().unwrap()),
            Some("[::1]:8080".parse().unwrap()),
            Some("[fe80::1%7]:1".parse().unwrap()),
        ];
        let kinds = [Kind::Connect, Kind::Request, Kind::Tunnel, Kind::Route];
        let decisions = [Decision::Allow, Decision::Deny, Decision::Error];
        for (i, client) in clients.into_iter().enumerate() {
            let mut e = Event::begin(i as u64, kinds[i % 4], client).target(
                "GET",
                "bench.test",
                443,
                "/a?b=c",
            );
            e.outcome(decisions[i % 3], 200 + i as u16, "allowed");
            e.bytes_up = 10u64.pow(i as u32 * 3);
            e.bytes_down = u64::MAX - i as u64;
            e.duration_ms = 99;
            same_as_serde(&e);
            e.port = u16::MAX;
            e.status = 0;
            e.findings = vec![
                serde_json::json!({"rule_id": "x", "preview": "a\"b"}),
                serde_json::json!(null),
            ];
            same_as_serde(&e);
        }
    }

    /// The word test against the byte test, for every byte value at every position.
    #[test]
    fn word_test_is_exact() {
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut w = [b'a'; 8];
                w[pos] = b;
                let want = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(needs_escape(u64::from_le_bytes(w)), want, "{b} at {pos}");
            }
        }
        let mut out = Vec::new();
        let s = "0123456789abcdef\"0123456789abcdef\u{1}é漢\\x";
        for cut in 0..s.len() {
            for from in 0..cut {
                let Some(part) = s.get(from..cut) else {
                    continue;
                };
                out.clear();
                string(&mut out, part);
                assert_eq!(out, serde_json::to_vec(part).unwrap(), "{part:?}");
            }
        }
    }

    #[test]
    fn numbers_match_serde() {
        let mut all: Vec<u64> = (0..100_000).collect();
        all.extend((0..64).map(|k| 1u64 << k));
        all.extend((1..20).map(|k| 10u64.pow(k)));
        all.extend((1..20).map(|k| 10u64.pow(k) - 1));
        all.extend((1..20).map(|k| 10u64.pow(k) + 1));
        let mut out = Vec::new();
        for n in all {
            out.clear();
            number(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap(), "{n}");
        }
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
    }
}
