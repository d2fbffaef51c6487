//! Key checking with did-you-mean, and a map from key paths to lines.
//!
//! serde's `deny_unknown_fields` says "unknown field `alow`" without saying where or in which
//! table. This pre-pass walks the document with spans, checks every key against the known key
//! sets and records where each key path sits, so later value errors can name their line too.

use super::error::ConfigError;
use super::spanned::{Node, Sp};
use std::collections::HashMap;

/// The shape of the config, for key checking only (value types are serde's job).
pub(crate) enum Shape {
    Leaf,
    Table(&'static [(&'static str, Shape)]),
    /// Array of tables (`[[routes]]`).
    TableArray(&'static [(&'static str, Shape)]),
    /// A table whose keys are data (`[upstream.hosts]`).
    AnyKeys,
}

const CA: &[(&str, Shape)] = &[("cert", Shape::Leaf), ("key", Shape::Leaf)];
const CLIENTS: &[(&str, Shape)] = &[("allow", Shape::Leaf), ("deny", Shape::Leaf)];
const EGRESS: &[(&str, Shape)] = &[
    ("allow", Shape::Leaf),
    ("passthrough", Shape::Leaf),
    ("allow_private", Shape::Leaf),
];
const UPSTREAM: &[(&str, Shape)] = &[
    ("extra_roots", Shape::Leaf),
    ("hosts", Shape::AnyKeys),
    ("nameservers", Shape::Leaf),
];
const DLP: &[(&str, Shape)] = &[
    ("mode", Shape::Leaf),
    ("disable_rules", Shape::Leaf),
    ("warn_rules", Shape::Leaf),
    ("exempt_hosts", Shape::Leaf),
    ("known_secret_env", Shape::Leaf),
];
const ROUTE: &[(&str, Shape)] = &[
    ("path", Shape::Leaf),
    ("upstream", Shape::Leaf),
    ("auth_scheme", Shape::Leaf),
    ("token_env", Shape::Leaf),
    ("token_file", Shape::Leaf),
];
const INJECT: &[(&str, Shape)] = &[
    ("host", Shape::Leaf),
    ("header", Shape::Leaf),
    ("placeholder", Shape::Leaf),
    ("token_env", Shape::Leaf),
    ("token_file", Shape::Leaf),
    ("require", Shape::Leaf),
];
pub(crate) const ROOT: &[(&str, Shape)] = &[
    ("listen", Shape::Leaf),
    ("admin_listen", Shape::Leaf),
    ("routes_listen", Shape::Leaf),
    ("audit", Shape::Leaf),
    ("ca", Shape::Table(CA)),
    ("egress", Shape::Table(EGRESS)),
    ("upstream", Shape::Table(UPSTREAM)),
    ("dlp", Shape::Table(DLP)),
    ("routes", Shape::TableArray(ROUTE)),
    ("inject", Shape::TableArray(INJECT)),
    // Last: a misplaced `allow` is far more often `egress.allow` (the first match is suggested).
    ("clients", Shape::Table(CLIENTS)),
];

/// Key path → (line of the key or element, byte span of the value), in document order.
#[derive(Default, Debug)]
pub(crate) struct Lines {
    src_line_starts: Vec<usize>,
    by_path: HashMap<String, (Option<usize>, Option<std::ops::Range<usize>>)>,
}

impl Lines {
    fn new(src: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Lines {
            src_line_starts: starts,
            by_path: HashMap::new(),
        }
    }

    pub(crate) fn line_at(&self, offset: usize) -> usize {
        self.src_line_starts.partition_point(|s| *s <= offset)
    }

    /// Line of a key path such as `egress.allow[2]` or `routes[0].path`.
    pub(crate) fn line(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).and_then(|(l, _)| *l)
    }

    /// The innermost key path whose value contains `offset` (to name the key of a serde error).
    pub(crate) fn path_at(&self, offset: usize) -> Option<&str> {
        self.by_path
            .iter()
            .filter_map(|(p, (_, span))| span.as_ref().map(|s| (p, s)))
            .filter(|(_, span)| span.contains(&offset) || span.start == offset)
            .min_by_key(|(_, span)| span.len())
            .map(|(p, _)| p.as_str())
    }

    fn record(
        &mut self,
        path: String,
        key_start: Option<usize>,
        value: Option<std::ops::Range<usize>>,
    ) {
        let line = key_start.map(|o| self.line_at(o));
        self.by_path.insert(path, (line, value));
    }
}

/// Checks every key and records lines. Returns the line map even when the tree could not be
/// built (a value error then surfaces from serde with its own position).
pub(crate) fn check_keys(src: &str) -> Result<Lines, ConfigError> {
    let mut lines = Lines::new(src);
    let root: Node = match toml::from_str(src) {
        Ok(n) => n,
        Err(_) => return Ok(lines),
    };
    walk(&root, ROOT, "", &mut lines)?;
    Ok(lines)
}

fn walk(
    node: &Node,
    shape: &'static [(&'static str, Shape)],
    prefix: &str,
    lines: &mut Lines,
) -> Result<(), ConfigError> {
    let Node::Table(entries) = node else {
        return Ok(());
    };
    for (key, value) in entries {
        let name = key.value.as_str();
        let path = join(prefix, name);
        let at = key
            .span
            .as_ref()
            .map(|s| s.start)
            .or_else(|| first_offset(value));
        let Some((_, sub)) = shape.iter().find(|(k, _)| *k == name) else {
            return Err(ConfigError::UnknownKey {
                suggestion: suggest(name, shape),
                line: at.map(|o| lines.line_at(o)),
                key: path,
            });
        };
        lines.record(path.clone(), at, value.span.clone());
        match (sub, &value.value) {
            (Shape::Table(inner), n) => walk(n, inner, &path, lines)?,
            (Shape::TableArray(inner), Node::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    lines.record(p.clone(), first_offset(item), item.span.clone());
                    walk(&item.value, inner, &p, lines)?;
                }
            }
            (Shape::AnyKeys, Node::Table(kvs)) => {
                for (k, v) in kvs {
                    let at = k.span.as_ref().map(|s| s.start).or_else(|| first_offset(v));
                    lines.record(format!("{path}.\"{}\"", k.value), at, v.span.clone());
                }
            }
            (Shape::Leaf, Node::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    lines.record(
                        format!("{path}[{i}]"),
                        first_offset(item),
                        item.span.clone(),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The first known offset in a subtree (implicit tables have no span of their own).
fn first_offset(node: &Sp<Node>) -> Option<usize> {
    if let Some(s) = &node.span {
        return Some(s.start);
    }
    match &node.value {
        Node::Table(entries) => entries
            .iter()
            .find_map(|(k, v)| k.span.as_ref().map(|s| s.start).or_else(|| first_offset(v))),
        Node::Array(items) => items.iter().find_map(first_offset),
        Node::Leaf => None,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A close key at the same level, else the full path of an exact key elsewhere (`allow` at the
/// top level → `egress.allow`).
fn suggest(key: &str, shape: &[(&'static str, Shape)]) -> Option<String> {
    let close = shape
        .iter()
        .map(|(k, _)| (strsim::normalized_damerau_levenshtein(key, k), *k))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, k)) = close {
        return Some(k.to_owned());
    }
    find_anywhere(key, ROOT, "")
}

fn find_anywhere(key: &str, shape: &[(&'static str, Shape)], prefix: &str) -> Option<String> {
    for (k, sub) in shape {
        let path = join(prefix, k);
        if *k == key {
            return Some(path);
        }
        if let Shape::Table(inner) | Shape::TableArray(inner) = sub {
            if let Some(found) = find_anywhere(key, inner, &path) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(src: &str) -> (String, Option<String>, Option<usize>) {
        match check_keys(src) {
            Err(ConfigError::UnknownKey {
                key,
                suggestion,
                line,
            }) => (key, suggestion, line),
            other => panic!("expected unknown key, got {other:?}"),
        }
    }

    #[test]
    fn typo_in_table() {
        let src = "listen = \"127.0.0.1:3128\"\n\n[egress]\nalow = [\"x.com\"]\n";
        assert_eq!(
            unknown(src),
            ("egress.alow".into(), Some("allow".into()), Some(4))
        );
    }

    #[test]
    fn typo_in_dotted_and_inline_forms() {
        assert_eq!(unknown("egress.passtrough = []").0, "egress.passtrough");
        assert_eq!(
            unknown("egress = { alow_private = [] }").1.as_deref(),
            Some("allow_private")
        );
    }

    #[test]
    fn key_at_wrong_level_suggests_full_path() {
        let (key, s, line) = unknown("\nallow = [\"x.com\"]\n");
        assert_eq!(
            (key.as_str(), s.as_deref(), line),
            ("allow", Some("egress.allow"), Some(2))
        );
    }

    #[test]
    fn unknown_in_table_array() {
        let src = "[[routes]]\npath = \"/a/\"\n[[routes]]\npth = \"/b/\"\n";
        assert_eq!(
            unknown(src),
            ("routes[1].pth".into(), Some("path".into()), Some(4))
        );
    }

    #[test]
    fn unrelated_key_has_no_suggestion() {
        assert_eq!(unknown("[dlp]\nzzzzqqq = 1").1, None);
    }

    #[test]
    fn hosts_keys_are_data() {
        let lines = check_keys("[upstream.hosts]\n\"git.internal\" = \"100.64.0.7\"\n").unwrap();
        assert_eq!(lines.line("upstream.hosts.\"git.internal\""), Some(2));
    }

    #[test]
    fn array_elements_have_lines() {
        let lines = check_keys("[egress]\nallow = [\n  \"a.com\",\n  \"*\",\n]\n").unwrap();
        assert_eq!(lines.line("egress.allow[1]"), Some(4));
        let offset = "[egress]\nallow = [\n  \"a.com\",\n  ".len();
        assert_eq!(lines.path_at(offset), Some("egress.allow[1]"));
    }
}
