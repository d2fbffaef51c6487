//! Typed reads from the strict YAML tree, with the error messages a manifest author needs:
//! where, what was expected, and for unknown keys the closest known one.

use super::yaml::{Node, Scalar, YamlError};

/// The entries of a mapping node, or an error naming what was expected.
pub fn mapping<'a>(node: &'a Node, what: &str) -> Result<&'a [(Scalar, Node)], YamlError> {
    match node {
        Node::Map { entries, .. } => Ok(entries),
        other => Err(YamlError::new(
            other.line(),
            format!("`{what}` must be a mapping, found {}", other.kind()),
        )),
    }
}

/// Fails on the first key that is neither `known` nor `ignored`, suggesting the closest known key.
pub fn check_keys(
    entries: &[(Scalar, Node)],
    known: &[&str],
    ignored: &[&str],
    what: &str,
) -> Result<(), YamlError> {
    for (key, _) in entries {
        let k = key.value.as_str();
        if known.contains(&k) || ignored.contains(&k) {
            continue;
        }
        let hint = match did_you_mean(k, known) {
            Some(best) => format!("; did you mean `{best}`?"),
            None => format!("; known keys: {}", known.join(", ")),
        };
        return Err(YamlError::new(
            key.line,
            format!("unknown key `{k}` in {what}{hint}"),
        ));
    }
    Ok(())
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            let score = strsim::normalized_damerau_levenshtein(&lower, &c.to_ascii_lowercase());
            (score, *c)
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub fn get<'a>(entries: &'a [(Scalar, Node)], key: &str) -> Option<&'a Node> {
    entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
}

/// A string value. Plain scalars that could be read as something else were refused by the parser.
pub fn string(node: &Node, what: &str) -> Result<String, YamlError> {
    match node {
        Node::Scalar(s) => Ok(s.value.clone()),
        other => Err(YamlError::new(
            other.line(),
            format!("`{what}` must be a string, found {}", other.kind()),
        )),
    }
}

/// A list of strings with their lines.
pub fn string_list(node: &Node, what: &str) -> Result<Vec<(String, usize)>, YamlError> {
    match node {
        Node::Seq { items, .. } => items
            .iter()
            .map(|item| Ok((string(item, &format!("{what} entry"))?, item.line())))
            .collect(),
        other => Err(YamlError::new(
            other.line(),
            format!("`{what}` must be a list, found {}", other.kind()),
        )),
    }
}

/// A list whose entries are strings or a single string (`role: x` or `role: [x, y]`).
pub fn one_or_many(node: &Node, what: &str) -> Result<Vec<(String, usize)>, YamlError> {
    match node {
        Node::Scalar(s) => Ok(vec![(s.value.clone(), s.line)]),
        other => string_list(other, what),
    }
}

/// A mapping of string to string, in file order, with each key's line.
pub fn string_map(node: &Node, what: &str) -> Result<Vec<(String, String, usize)>, YamlError> {
    mapping(node, what)?
        .iter()
        .map(|(k, v)| {
            let value = string(v, &format!("{what}.{}", k.value))?;
            Ok((k.value.clone(), value, k.line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys() {
        assert_eq!(did_you_mean("alowlist", &["allowlist"]), Some("allowlist"));
        assert_eq!(
            did_you_mean("Upsteam", &["Name", "Upstream"]),
            Some("Upstream")
        );
        assert_eq!(did_you_mean("zzzz", &["env", "git"]), None);
        assert_eq!(
            did_you_mean("token_rf", &["token_ref", "path"]),
            Some("token_ref")
        );
    }
}
