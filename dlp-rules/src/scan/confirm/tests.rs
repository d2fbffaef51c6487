use super::*;
use crate::engine::Engine;
use crate::tail::tests::{inputs, same_findings};
use crate::testgen::Lcg;

/// The `memchr` pre-check is only sound if every match holds the bytes the syntax tree says
/// it requires: checked on every example of every embedded rule and for every gate.
#[test]
fn every_pack_example_match_holds_its_required_bytes() {
    let e = Engine::builtin().unwrap();
    let mut with_confirm = 0;
    for (i, rule) in e.rules.iter().enumerate() {
        with_confirm += usize::from(rule.confirm.is_some());
        let gate = e.gate_of[i].map(|g| &e.gates[g as usize]);
        for ex in &rule.info.examples {
            for m in rule.regex().unwrap().find_iter(ex.as_bytes()) {
                let s = &ex.as_bytes()[m.start()..m.end()];
                for b in (0..=255u8).filter(|&b| rule.required.contains(b)) {
                    assert!(
                        s.contains(&b),
                        "{}: {:?} lacks {:?}",
                        rule.info.id,
                        ex,
                        b as char
                    );
                }
                assert!(present(rule.confirm, s), "{}", rule.info.id);
                assert!(
                    gate.is_none_or(|g| present(g.confirm, s)),
                    "{}",
                    rule.info.id
                );
            }
        }
    }
    // The URL-credential gate is what this is for.
    assert!(e.gates.iter().any(|g| g.confirm == Some(b'@')));
    assert!(with_confirm > 0);
}

/// Audit previews show a rule's keyword at most, never a byte of the secret after it.
#[test]
fn previews_of_every_pack_example_are_keywords_only() {
    let e = Engine::builtin().unwrap();
    let mut seen = 0;
    for rule in &e.rules {
        for ex in &rule.info.examples {
            for f in e.scan_bytes(ex.as_bytes(), false, crate::finding::Location::Body) {
                let shown = f.preview.trim_end_matches('…');
                assert!(
                    shown.is_empty()
                        || rule.literals.iter().any(|l| l == shown)
                        || e.rules
                            .iter()
                            .any(|r| r.literals.iter().any(|l| l == shown)),
                    "{}: preview {:?} of {ex:?}",
                    rule.info.id,
                    f.preview
                );
                seen += usize::from(!shown.is_empty());
            }
        }
    }
    assert!(seen > 50, "keyword previews seen: {seen}");
}

/// Inputs where window shapes matter: prefixed tokens glued to each other and to their own
/// prefixes (a match that another hit's window starts inside), JWT segments, every pack
/// example next to another one, raw, in JSON and percent-encoded in a form.
fn token_inputs(e: &Engine) -> Vec<(Vec<u8>, bool)> {
    const PIECES: &[&str] = &[
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "eyJ",
        ".",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "ghp_",
        "github_pat_",
        "Xk2LmQ9pR7sT4vW8yZ1bC3dF5gH6jN0a",
        "11AAAAAAA0",
        "AKIA",
        "IOSFODNN7QWERTYZ",
        "sk-ant-api03-",
        "xoxb-",
        "hvb.",
        "ya29.",
        "-",
        "_",
        " ",
        "\\n",
        "=",
        "\"",
        "%2B",
        "/",
    ];
    let examples: Vec<&str> = e
        .rules()
        .flat_map(|r| r.examples.iter().map(String::as_str))
        .collect();
    let mut rng = Lcg::new(0x5eed);
    let mut out = Vec::new();
    for i in 0..3000 {
        let n = 2 + (rng.next() >> 59) as usize;
        let s: String = (0..n).map(|_| rng.pick(PIECES)).collect();
        out.push((s.into_bytes(), i % 4 == 0));
    }
    for i in 0..2000 {
        let a = rng.pick(&examples);
        let b = rng.pick(&examples);
        let sep = rng.pick(&["", " ", "\n", "_", ".", "\\n", "="]);
        let s = format!("{a}{sep}{b}");
        let body = match i % 3 {
            0 => s,
            1 => format!("{{\"k\":\"{s}\"}}"),
            _ => format!(
                "a=1&b={}",
                s.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
            ),
        };
        out.push((body.into_bytes(), i % 3 == 2));
    }
    out
}

/// A window that starts at its hit instead of `window` bytes before it (`Rule::reach`) finds
/// what the symmetric window finds.
#[test]
fn windows_from_the_hit_change_no_finding() {
    let with = Engine::builtin().unwrap();
    let mut without = Engine::builtin().unwrap();
    without.reach = vec![None; without.reach.len()];
    assert!(with.reach.iter().filter(|r| r.is_some()).count() > 100);
    let mut found = 0;
    let mut all = inputs();
    all.extend(token_inputs(&with));
    for (data, form) in all {
        found += usize::from(!same_findings(&with, &without, &data, form).is_empty());
    }
    assert!(found > 2000, "{found}");
}

#[test]
fn a_rule_is_anchored_only_when_every_match_starts_with_its_literal() {
    let e = Engine::builtin().unwrap();
    let reach = |id: &str| {
        let i = e.rules.iter().position(|r| r.info.id == id).unwrap();
        e.reach[i]
    };
    // `\beyJ...{10,500}\.eyJ...{10,3000}\.[...]{20,700}`: 3 + 511 + 3 + 3001 + 701.
    assert_eq!(reach("jwt"), Some(4208));
    assert!(reach("github-pat").is_some());
    // The scheme before `://`; the key name before a telegram token's `:AA`.
    assert_eq!(reach("url-credentials"), None);
    assert_eq!(reach("telegram-bot-token"), None);
    // The streaming overlap follows the longest window: the JWT's, now its longest token.
    assert_eq!(e.max_match, 4208);
}

/// A rule whose matches may start before its own hit's window (`Tails::droppable` false) gets,
/// wherever it has a live window, a window around every hit of its keyword, dead ones included:
/// the same windows as collecting every hit's window on the way (the reference here), which
/// `restore_dead_windows` replaced by searching the view again.
#[test]
fn dead_windows_are_restored_where_the_rule_is_live() {
    let e = Engine::builtin().unwrap();
    let rules: Vec<u32> = (0..e.rules.len() as u32)
        .filter(|&r| !e.tails.droppable(r) && e.tails.literal_of(r).is_some())
        .collect();
    assert!(rules.len() >= 2, "{rules:?}");
    let (mut live, mut hits) = (0, 0);
    for (data, _) in inputs() {
        let wins = e.windows(&data, false, None, &mut Vec::new());
        for &r in &rules {
            let mine: Vec<(usize, usize)> = wins
                .iter()
                .filter(|w| w.0 == r)
                .map(|w| (w.1, w.2))
                .collect();
            if !wins.iter().any(|w| w.0 == r && w.3) {
                continue;
            }
            let mut all = Vec::new();
            e.prefilter.for_each_hit(&data, |s, end, ts| {
                if ts.contains(&Target::Rule(r)) {
                    all.push(e.window_around(r, s, end, data.len()));
                }
            });
            hits += all.len();
            live += 1;
            all.sort_unstable();
            let mut want: Vec<(usize, usize)> = Vec::new();
            for (s, end) in all {
                match want.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(end),
                    _ => want.push((s, end)),
                }
            }
            assert_eq!(mine, want, "{}", String::from_utf8_lossy(&data));
        }
    }
    // The inputs must hold live windows of these rules, and more hits than live ones.
    assert!(live > 100 && hits > 2 * live, "{live} {hits}");
}
