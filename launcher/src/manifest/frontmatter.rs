//! Splits a manifest into its YAML frontmatter and Markdown body, as Claude Code subagent files are
//! written: a first line `---`, the YAML, a closing `---` line, then the body.

use super::yaml::YamlError;

/// The two halves of a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    pub yaml: &'a str,
    /// 1-based line of the file where `yaml` starts, so YAML errors can cite file lines.
    pub yaml_first_line: usize,
    pub body: &'a str,
}

/// A file without a leading `---` line has no frontmatter: all of it is body.
pub fn split(text: &str) -> Result<Split<'_>, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = strip_fence_line(text) else {
        return Ok(Split {
            yaml: "",
            yaml_first_line: 1,
            body: text,
        });
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if is_fence(line) {
            return Ok(Split {
                yaml: &rest[..offset],
                yaml_first_line: 2,
                body: &rest[offset + line.len()..],
            });
        }
        offset += line.len();
    }
    Err(YamlError::new(
        1,
        "the frontmatter opened by `---` on line 1 is never closed by a `---` line",
    ))
}

fn strip_fence_line(text: &str) -> Option<&str> {
    let first_end = text.find('\n').map_or(text.len(), |i| i + 1);
    is_fence(&text[..first_end]).then(|| &text[first_end..])
}

/// A fence line is three or more dashes, then only whitespace: what python-frontmatter, which
/// read these files before, accepts for both fences.
fn is_fence(line: &str) -> bool {
    let line = line.trim_end();
    line.len() >= 3 && line.bytes().all(|b| b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_may_be_longer_and_carry_trailing_blanks() {
        let s = split("--- \na: b\n----\t\r\nBody\n").unwrap();
        assert_eq!(s.yaml, "a: b\n");
        assert_eq!(s.body, "Body\n");
        let s = split("---\na: b\n--\n---\nBody").unwrap();
        assert_eq!(s.yaml, "a: b\n--\n", "two dashes are not a fence");
    }

    #[test]
    fn splits_yaml_and_body() {
        let s = split("---\na: b\n---\n\nHello\n").unwrap();
        assert_eq!(s.yaml, "a: b\n");
        assert_eq!(s.body, "\nHello\n");
        assert_eq!(s.yaml_first_line, 2);
    }

    #[test]
    fn crlf_and_bom() {
        let s = split("\u{feff}---\r\na: b\r\n---\r\nBody").unwrap();
        assert_eq!(s.yaml, "a: b\r\n");
        assert_eq!(s.body, "Body");
    }

    #[test]
    fn no_frontmatter_is_all_body() {
        let s = split("Just a prompt\n---\n").unwrap();
        assert_eq!(s.yaml, "");
        assert_eq!(s.body, "Just a prompt\n---\n");
    }

    #[test]
    fn empty_frontmatter() {
        let s = split("---\n---\nx").unwrap();
        assert_eq!(s.yaml, "");
        assert_eq!(s.body, "x");
    }

    #[test]
    fn unclosed_frontmatter_is_an_error() {
        let e = split("---\na: b\n").unwrap_err();
        assert!(e.message.contains("never closed"));
    }

    #[test]
    fn a_dashes_line_inside_body_is_kept() {
        let s = split("---\na: b\n---\nx\n---\ny\n").unwrap();
        assert_eq!(s.body, "x\n---\ny\n");
    }
}
