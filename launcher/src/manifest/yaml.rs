//! Strict YAML: the frontmatter is parsed by `saphyr-parser` (a maintained YAML 1.2 event parser) and
//! folded into a tiny tree, refusing every construct whose meaning a reader could misjudge.
//!
//! Why strict: manifests name credentials and egress. YAML 1.1 readers (the seeds used PyYAML) turn
//! `NO` into `false`, `017` into 15 and `2026-05-24` into a date, and anchors/tags/block scalars make
//! a file mean something other than what it looks like. Every value we read is a string, so a plain
//! scalar that any YAML reader might resolve to a non-string is an error that says "quote it".

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A problem at a line of the YAML text (1-based, relative to the text given to [`parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl YamlError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// A scalar as written: its text, whether it was quoted, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub value: String,
    pub quoted: bool,
    pub line: usize,
}

/// The only shapes a manifest is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Scalar(Scalar),
    Seq {
        items: Vec<Node>,
        line: usize,
    },
    Map {
        entries: Vec<(Scalar, Node)>,
        line: usize,
    },
}

impl Node {
    pub fn line(&self) -> usize {
        match self {
            Node::Scalar(s) => s.line,
            Node::Seq { line, .. } | Node::Map { line, .. } => *line,
        }
    }

    /// What a reader of an error message would call this node.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(_) => "a string",
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
        }
    }
}

/// Parses one YAML document. An empty text is an empty mapping.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut builder = Builder::default();
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            YamlError::new(e.marker().line(), format!("invalid YAML: {}", e.info()))
        })?;
        if let Event::DocumentStart(_) = event {
            documents += 1;
            if documents > 1 {
                return Err(YamlError::new(
                    span.start.line(),
                    "only one YAML document is allowed in the frontmatter",
                ));
            }
        }
        builder.event(event, span)?;
    }
    Ok(builder.finish())
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
}

enum Open {
    Seq(Vec<Node>, usize),
    Map(Vec<(Scalar, Node)>, Option<Scalar>, usize),
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let line = span.start.line();
        match event {
            Event::Alias(_) => Err(YamlError::new(
                line,
                "YAML aliases (`*name`) are not allowed; write the value out and quote it",
            )),
            Event::Scalar(value, style, anchor, tag) => {
                reject_anchor_or_tag(anchor, tag.is_some(), line)?;
                let scalar = scalar(value, style, span)?;
                self.push(Node::Scalar(scalar))
            }
            Event::SequenceStart(anchor, tag) => {
                reject_anchor_or_tag(anchor, tag.is_some(), line)?;
                self.stack.push(Open::Seq(Vec::new(), line));
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                reject_anchor_or_tag(anchor, tag.is_some(), line)?;
                self.stack.push(Open::Map(Vec::new(), None, line));
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq(items, line)) => self.push(Node::Seq { items, line }),
                Some(Open::Map(entries, _, line)) => self.push(Node::Map { entries, line }),
                None => Err(YamlError::new(line, "invalid YAML: unbalanced collection")),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn push(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Open::Seq(items, _)) => {
                items.push(node);
                Ok(())
            }
            Some(Open::Map(entries, pending, _)) => match pending.take() {
                Some(key) => {
                    if entries.iter().any(|(k, _)| k.value == key.value) {
                        return Err(YamlError::new(
                            key.line,
                            format!("duplicate key `{}`", key.value),
                        ));
                    }
                    entries.push((key, node));
                    Ok(())
                }
                None => match node {
                    Node::Scalar(key) => {
                        *pending = Some(key);
                        Ok(())
                    }
                    other => Err(YamlError::new(
                        other.line(),
                        "mapping keys must be plain strings",
                    )),
                },
            },
        }
    }

    fn finish(self) -> Node {
        self.root.unwrap_or(Node::Map {
            entries: Vec::new(),
            line: 1,
        })
    }
}

fn reject_anchor_or_tag(anchor: usize, tagged: bool, line: usize) -> Result<(), YamlError> {
    if anchor != 0 {
        return Err(YamlError::new(
            line,
            "YAML anchors (`&name`) are not allowed; write each value out and quote it",
        ));
    }
    if tagged {
        return Err(YamlError::new(
            line,
            "YAML tags (`!!str`, `!foo`) are not allowed; quote it instead",
        ));
    }
    Ok(())
}

fn scalar(value: Cow<'_, str>, style: ScalarStyle, span: Span) -> Result<Scalar, YamlError> {
    let line = span.start.line();
    match style {
        ScalarStyle::Literal | ScalarStyle::Folded => {
            return Err(YamlError::new(
                line,
                "multi-line block scalars (`|`, `>`) are not allowed; write the value on one line and quote it",
            ));
        }
        ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {}
    }
    if span.end.line() > line {
        return Err(YamlError::new(
            line,
            "a value spanning several lines is not allowed; write it on one line and quote it",
        ));
    }
    let quoted = style != ScalarStyle::Plain;
    if !quoted {
        if let Some(reading) = ambiguous(&value) {
            let shown = if value.is_empty() { "(empty)" } else { &value };
            return Err(YamlError::new(
                line,
                format!(
                    "bare value `{shown}` is ambiguous (YAML may read it as {reading}); quote it: \"{value}\""
                ),
            ));
        }
    }
    Ok(Scalar {
        value: value.into_owned(),
        quoted,
        line,
    })
}

/// Returns what a YAML 1.1 or 1.2 reader could turn this plain scalar into, if not a string.
pub fn ambiguous(plain: &str) -> Option<&'static str> {
    const BOOLS: &[&str] = &["y", "yes", "n", "no", "true", "false", "on", "off"];
    let lower = plain.to_ascii_lowercase();
    if plain.is_empty() || plain == "~" || lower == "null" {
        return Some("null");
    }
    if BOOLS.contains(&lower.as_str()) {
        return Some("a boolean");
    }
    if is_date(plain) {
        return Some("a date");
    }
    if is_number(&lower) {
        return Some("a number");
    }
    None
}

fn is_date(s: &str) -> bool {
    // YAML 1.1 timestamp: YYYY-M?M-D?D, optionally followed by a time part.
    let date = s.split(['T', 't', ' ']).next().unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && (1..=2).contains(&parts[1].len())
        && (1..=2).contains(&parts[2].len())
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_number(lower: &str) -> bool {
    let body = lower.strip_prefix(['+', '-']).unwrap_or(lower);
    if matches!(body, ".inf" | ".nan") || lower == ".nan" {
        return true;
    }
    let digits_with = |s: &str, ok: fn(u8) -> bool| {
        !s.is_empty() && s.bytes().all(|b| ok(b) || b == b'_') && s.bytes().any(ok)
    };
    if let Some(hex) = body.strip_prefix("0x") {
        return digits_with(hex, |b| b.is_ascii_hexdigit());
    }
    if let Some(oct) = body.strip_prefix("0o") {
        return digits_with(oct, |b| (b'0'..=b'7').contains(&b));
    }
    if let Some(bin) = body.strip_prefix("0b") {
        return digits_with(bin, |b| b == b'0' || b == b'1');
    }
    // Sexagesimal (YAML 1.1): 1:20, 190:20:30.
    if body.contains(':')
        && body
            .split(':')
            .all(|p| digits_with(p, |b| b.is_ascii_digit()))
    {
        return true;
    }
    is_decimal(body)
}

/// Integers (incl. leading-zero octal) and floats like `1.5`, `.5`, `1e3`, `1_000`.
fn is_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find('e') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut dots = 0;
    let mut digits = 0;
    for b in mantissa.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'_' => {}
            b'.' => dots += 1,
            _ => return false,
        }
    }
    if digits == 0 || dots > 1 {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
