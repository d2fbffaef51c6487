use super::*;
use crate::engine::Engine;
use crate::finding::Location;
use crate::testgen::Lcg;

fn hir(re: &str) -> Hir {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(false)
        .build()
        .parse(re)
        .unwrap()
}

#[test]
fn the_tail_is_what_follows_the_literal_that_ends_with_the_keyword() {
    let tail = |re: &str, kw: &str| split_after(&hir(re), kw.as_bytes()).map(|(_, t)| t);
    assert_eq!(tail(r"ab://[x-z]+@", "://"), Some(hir(r"[x-z]+@")));
    assert_eq!(tail(r"\b(?:a|bc)s?://x{2}y", "://"), Some(hir(r"x{2}y")));
    assert_eq!(tail(r"(ghp_[A-Z]{3})", "ghp_"), Some(hir(r"[A-Z]{3}")));
    // The first literal ending with the keyword: the longest tail.
    assert_eq!(tail(r"k=[0-9]k=z", "k="), Some(hir(r"[0-9]k=z")));
    // No tail: an alternation on top, nothing after, a keyword inside a literal, a class.
    assert_eq!(tail(r"a://x|b://y", "://"), None);
    assert_eq!(tail(r"[a-z]+://", "://"), None);
    assert_eq!(tail(r"a://b", "a:/"), None);
    assert_eq!(tail(r"(?i)key=[0-9]", "key="), None);
    assert_eq!(tail(r"x(?:ab)+://y", "ab"), None);
}

#[test]
fn failed_windows_are_dropped_only_where_a_match_stays_in_its_own_window() {
    let own = |re: &str, window: usize| {
        RuleTail::read(&hir(re), &["key_".into()], window, false).map(|t| t.own_window)
    };
    assert_eq!(own(r"key_[a-z]{10}", 10), Some(true));
    // The tail, or what stands before the keyword's end, longer than the window; unbounded.
    assert_eq!(own(r"key_[a-z]{11}", 10), Some(false));
    assert_eq!(own(r"[a-z]{7}key_[a-z]{2}", 10), Some(false));
    assert_eq!(own(r"key_[a-z]{2,}", 10_000), Some(false));
    let e = Engine::builtin().unwrap();
    let rule = |id: &str| e.rules.iter().position(|r| r.info.id == id).unwrap() as u32;
    // 195 bytes of tail in a 200-byte window; a scheme `postgresql+<driver>` of any length.
    assert!(e.tails.droppable(rule("url-credentials")));
    assert!(!e.tails.droppable(rule("postgres-url-credentials")));
}

#[test]
fn every_printed_tail_parses_back_to_its_tree() {
    let e = Engine::builtin().unwrap();
    let mut n = 0;
    for r in &e.rules {
        let Some(t) = &r.tail else { continue };
        let (_, tail) = split_after(&hir(&r.info.regex), t.literal.as_bytes()).unwrap();
        assert_eq!(hir(&t.pattern), tail, "{}", r.info.id);
        n += 1;
    }
    assert!(n > 50, "{n}");
}

#[test]
fn the_url_credential_rules_share_one_tail_that_plain_links_fail() {
    let e = Engine::builtin().unwrap();
    let url = |id: &str| {
        let i = e.rules.iter().position(|r| r.info.id == id).unwrap();
        e.tails.of(u32::try_from(i).unwrap(), b"://").unwrap()
    };
    let t = url("url-credentials");
    for id in [
        "postgres-url-credentials",
        "redis-url-credentials",
        "database-url-credentials",
    ] {
        assert_eq!(url(id), t, "{id}");
    }
    assert!(e.tails.count() > 1, "prefixed tokens get tails too");
    let at = |s: &str| s.find("://").unwrap() + 3;
    let link = "see https://example.com/a?b=c@d for more";
    assert!(!e.tails.follows(t, link.as_bytes(), at(link)));
    let cred = "db=postgres://app:s3cr3t-pw@db.internal/x";
    assert!(e.tails.follows(t, cred.as_bytes(), at(cred)));
    // Cut off before the host: a view that ends there cannot hold the match either.
    let cut = "postgres://app:s3cr3t-pw@";
    assert!(!e.tails.follows(t, cut.as_bytes(), at(cut)));
    // A keyword the rule lists but whose hits have no tail (another literal) is not asked.
    assert_eq!(e.tails.of(0, b"no-such-literal"), None);
}

fn findings(e: &Engine, data: &[u8], form: bool) -> Vec<String> {
    let mut f: Vec<String> = e
        .scan_bytes(data, form, Location::Body)
        .iter()
        .map(|f| format!("{f:?}"))
        .collect();
    f.sort();
    f
}

/// The findings of `a` on `data`, required to equal those of `b` (a differential test's step).
pub(crate) fn same_findings(a: &Engine, b: &Engine, data: &[u8], form: bool) -> Vec<String> {
    let found = findings(a, data, form);
    assert_eq!(
        found,
        findings(b, data, form),
        "{:?} form={form}",
        String::from_utf8_lossy(data)
    );
    found
}

/// Inputs where tails matter: links, credentials in URLs (percent-encoded passwords among
/// them), e-mail addresses, JSON escapes, every pack example, in bodies and forms.
pub(crate) fn inputs() -> Vec<(Vec<u8>, bool)> {
    const PIECES: &[&str] = &[
        "https://",
        "postgres://",
        "redis://",
        "mongodb+srv://",
        "ftp://",
        "://",
        "app",
        "user",
        ":",
        ":",
        "s3cr3t-pw",
        "p%40ss%3Aw",
        "hunter22",
        "@",
        "@",
        "db.internal",
        "example.com",
        "/",
        "/path",
        "?q=1",
        " ",
        "\"",
        "\\\"",
        "\\n",
        "\\/",
        "$x",
        "%",
        "%2F",
        "+",
        ".",
        "[::1]",
        "{",
        "mail@example.org",
        "\n",
        "Kq7vP2xZ9mLw",
        "wJalrXUtnFEMI",
        // Far enough apart, two hits' windows differ and merge only in part.
        "then we walked along the river for a while and talked about the weather, the trains, \
         the price of bread and everything else that came to mind before the rain began",
    ];
    let e = Engine::builtin().unwrap();
    let mut out = Vec::new();
    let mut rng = Lcg::new(0x7a11);
    for i in 0..4000 {
        let n = 3 + (rng.next() >> 59) as usize;
        let s: String = (0..n).map(|_| rng.pick(PIECES)).collect();
        out.push((s.into_bytes(), i % 3 == 0));
    }
    // A match that reaches further back than its own hit's window (a long driver name), found
    // only because a failed hit's window before it is merged with that hit's.
    let driver = "d".repeat(250);
    out.push((
        format!("see https://example.com/ postgresql+{driver}://app:Kq7vP2xZ9mLw@db.internal/x")
            .into_bytes(),
        false,
    ));
    for r in e.rules() {
        for ex in &r.examples {
            out.push((format!("{{\"k\":\"{ex}\"}}").into_bytes(), false));
            let pct: String = ex.bytes().map(|b| format!("%{b:02X}")).collect();
            out.push((format!("a=1&b={pct}").into_bytes(), true));
        }
    }
    out
}

#[test]
fn tails_change_no_finding() {
    let with = Engine::builtin().unwrap();
    let mut without = Engine::builtin().unwrap();
    without.tails = Tails::default();
    let (mut found, mut pruned) = (0, 0);
    for (data, form) in inputs() {
        found += usize::from(!same_findings(&with, &without, &data, form).is_empty());
        pruned += usize::from(
            with.windows(&data, true, None, &mut Vec::new())
                .iter()
                .any(|w| !w.3),
        );
    }
    // The inputs must exercise both sides: findings, and hits the tails ruled out.
    assert!(found > 500, "{found}");
    assert!(pruned > 500, "{pruned}");
}
