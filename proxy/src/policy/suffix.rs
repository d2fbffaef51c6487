//! Public suffixes that a wildcard allow entry may not cover.
//!
//! No Public Suffix List crate is in the dependency set, and the full list is ~10k entries of
//! which almost none matter for an egress allowlist. Single-label suffixes (`*.com`) are refused
//! by the parser without any list; this subset catches the common multi-label ones.

/// Public suffixes under which a wildcard would match unrelated owners (a subset of the Public
/// Suffix List: the common multi-label ICANN suffixes and well-known shared hosting domains).
/// Single-label suffixes (`*.com`, `*.internal`) are refused without a list.
const PUBLIC_SUFFIXES: &[&str] = &[
    "ac.uk",
    "co.uk",
    "gov.uk",
    "ltd.uk",
    "me.uk",
    "net.uk",
    "org.uk",
    "plc.uk",
    "sch.uk",
    "com.au",
    "net.au",
    "org.au",
    "edu.au",
    "gov.au",
    "co.nz",
    "net.nz",
    "org.nz",
    "co.jp",
    "ne.jp",
    "or.jp",
    "ac.jp",
    "go.jp",
    "co.kr",
    "or.kr",
    "com.cn",
    "net.cn",
    "org.cn",
    "com.hk",
    "com.tw",
    "com.sg",
    "com.my",
    "co.in",
    "net.in",
    "org.in",
    "co.id",
    "co.th",
    "com.br",
    "net.br",
    "org.br",
    "com.ar",
    "com.mx",
    "com.co",
    "com.pe",
    "co.za",
    "com.tr",
    "com.ua",
    "com.pl",
    "co.il",
    "com.eg",
    "com.ng",
    "com.pk",
    "com.ph",
    "com.vn",
    "com.sa",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "netlify.app",
    "vercel.app",
    "pages.dev",
    "workers.dev",
    "web.app",
    "firebaseapp.com",
    "appspot.com",
    "blogspot.com",
    "azurewebsites.net",
    "cloudfront.net",
    "fly.dev",
    "onrender.com",
    "glitch.me",
    "ngrok.io",
    "ngrok-free.app",
    "trycloudflare.com",
    "repl.co",
    "s3.amazonaws.com",
];

/// True if `name` (normalized) is one of the listed multi-label public suffixes.
pub fn is_public_suffix(name: &str) -> bool {
    PUBLIC_SUFFIXES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_suffixes_are_normalized_and_multi_label() {
        for s in PUBLIC_SUFFIXES {
            assert_eq!(s.to_ascii_lowercase(), *s);
            assert!(s.contains('.'), "{s}: single labels need no list");
        }
        assert!(is_public_suffix("co.uk"));
        assert!(!is_public_suffix("example.co.uk"));
        assert!(!is_public_suffix("githubusercontent.com"));
    }
}
