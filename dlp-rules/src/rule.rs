//! Rule packs: the TOML contract, and rules compiled from it.

use std::sync::OnceLock;

use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use serde::{Deserialize, Serialize};

use crate::error::DlpError;
use crate::required::{self, ByteSet};
use crate::tail::RuleTail;
use crate::validate::Validator;

/// Bytes scanned either side of a keyword hit unless the rule says otherwise.
pub const DEFAULT_WINDOW: usize = 256;
/// Upper bound on a rule's window: it sets the streaming overlap, hence memory and re-scan cost.
pub const MAX_WINDOW: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// One `[[rule]]` table, exactly as written in a pack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub description: String,
    pub regex: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub secret_group: Option<usize>,
    pub entropy: Option<f64>,
    pub validator: Option<String>,
    pub severity: Severity,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub negatives: Vec<String>,
    pub window: Option<usize>,
    #[serde(default)]
    pub case_insensitive_keywords: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

/// Public description of a loaded rule (no regex internals).
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub description: String,
    pub pack: String,
    pub severity: Severity,
    /// The rule's regex source (for tools comparing engines; the engine runs it in windows).
    pub regex: String,
    pub keywords: Vec<String>,
    pub validator: Option<String>,
    pub examples: Vec<String>,
    pub negatives: Vec<String>,
}

/// A rule ready to confirm keyword hits.
#[derive(Debug)]
pub(crate) struct Rule {
    pub info: RuleInfo,
    /// Compiled on the rule's first keyword hit: most rules never fire in a given bottle, and
    /// every compiled automaton costs resident memory from start-up on (half the proxy's idle
    /// RSS when all were eager). The pattern is validated when the rule is loaded.
    regex: OnceLock<Option<Regex>>,
    pub secret_group: Option<usize>,
    pub entropy: Option<f64>,
    pub validator: Validator,
    pub window: usize,
    /// Literal patterns fed to the prefilter (case variants already expanded).
    pub literals: Vec<String>,
    /// Longest match accepted: a match longer than this could not be seen whole by the streaming
    /// scanner, so it is dropped everywhere to keep one-shot and streaming results identical.
    pub max_len: usize,
    /// Set when every match starts with one of the rule's literals and is at most this long
    /// (which fits the window after the shortest literal): a hit's window then starts at the
    /// hit and spans this many bytes, instead of `window` bytes on both sides (`anchored_reach`).
    pub reach: Option<usize>,
    /// Shortest match the regex can produce (from its syntax tree; 0 if it cannot match).
    pub min_len: usize,
    /// Bytes every match contains (see `required.rs`), and the one checked with `memchr`
    /// before the regex runs in a window, if any is worth it.
    pub required: ByteSet,
    pub confirm: Option<u8>,
    /// What must follow the keyword for a hit to open a window (`tail.rs`).
    pub tail: Option<RuleTail>,
}

/// Same dialect as `regex::bytes::Regex` (patterns may match arbitrary bytes), ASCII classes:
/// secrets are ASCII, and Unicode `\w`/`\b` would multiply the automata's size for nothing.
pub(crate) fn build_regex(src: &str) -> Option<Regex> {
    Regex::builder()
        .syntax(syntax::Config::new().utf8(false).unicode(false))
        .configure(Regex::config().utf8_empty(false))
        .build(src)
        .ok()
}

impl Rule {
    /// The compiled regex; `None` only if building a validated pattern failed (a size limit),
    /// which the scanner treats as a hit (fail closed).
    pub fn regex(&self) -> Option<&Regex> {
        self.regex
            .get_or_init(|| build_regex(&self.info.regex))
            .as_ref()
    }

    pub fn compile(pack: &str, spec: RuleSpec) -> Result<Rule, DlpError> {
        let err = |msg: String| DlpError::Rule {
            rule: spec.id.clone(),
            msg,
        };
        if spec.id.is_empty()
            || !spec
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("id must be non-empty kebab-case".into()));
        }
        // Validate now (syntax, and the capture groups `secret_group` names); build lazily.
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .unicode(false)
            .build()
            .parse(&spec.regex)
            .map_err(|e| err(format!("regex does not compile: {e}")))?;
        let groups = hir.properties().explicit_captures_len() + 1;
        if let Some(g) = spec.secret_group {
            if g >= groups {
                return Err(err(format!(
                    "secret_group {g} but the regex has {} groups",
                    groups.saturating_sub(1)
                )));
            }
        }
        let window = spec.window.unwrap_or(DEFAULT_WINDOW);
        if window == 0 || window > MAX_WINDOW {
            return Err(err(format!("window must be 1..={MAX_WINDOW}")));
        }
        if spec.keywords.iter().any(|k| k.len() < 2) {
            return Err(err("keywords must be at least 2 bytes".into()));
        }
        let validator = Validator::parse(spec.validator.as_deref());
        let mut literals = Vec::new();
        for k in &spec.keywords {
            if spec.case_insensitive_keywords {
                literals.extend(case_variants(k));
            } else {
                literals.push(k.clone());
            }
        }
        literals.sort();
        literals.dedup();
        let longest_kw = spec.keywords.iter().map(String::len).max().unwrap_or(0);
        let reach = anchored_reach(&hir, &literals, window);
        let max_len = match reach {
            _ if literals.is_empty() => window,
            Some(reach) => reach,
            None => 2 * window + longest_kw,
        };
        let min_len = hir.properties().minimum_len().unwrap_or(0);
        let required = required::required_bytes(&hir);
        let confirm = required::confirm_byte(required, &literals);
        let tail = RuleTail::read(&hir, &literals, window, reach.is_some());
        let info = RuleInfo {
            id: spec.id,
            description: spec.description,
            pack: pack.to_string(),
            severity: spec.severity,
            regex: spec.regex,
            keywords: spec.keywords,
            validator: spec.validator,
            examples: spec.examples,
            negatives: spec.negatives,
        };
        Ok(Rule {
            info,
            regex: OnceLock::new(),
            secret_group: spec.secret_group,
            entropy: spec.entropy,
            validator,
            window,
            literals,
            max_len,
            reach,
            min_len,
            required,
            confirm,
            tail,
        })
    }
}

/// The window reach of a rule whose matches all start with one of its `literals`, as read off
/// the regex's prefix literals (every match starts with one of them; `None` if there are too
/// many to list): its longest match, provided that fits `window` bytes after the shortest
/// literal, as the symmetric window of any hit fits it. Such a rule needs no bytes before a
/// hit (look-behinds such as `\b` still see them, the regex runs over the window as a span), and
/// its windows shrink to the match's own length: the JWT rule, whose `window` of 4 300 bytes is
/// sized for its 4 208-byte longest token, confirmed over 8 603 bytes per hit before, and the
/// streaming overlap, sized by the longest window, halves (docs/DLP.md, session 16).
fn anchored_reach(
    hir: &regex_syntax::hir::Hir,
    literals: &[String],
    window: usize,
) -> Option<usize> {
    let longest = hir.properties().maximum_len()?;
    let shortest = literals.iter().map(String::len).min()?;
    if longest > shortest + window {
        return None;
    }
    let prefixes = regex_syntax::hir::literal::Extractor::new().extract(hir);
    let prefixes = prefixes.literals()?;
    let anchored = !prefixes.is_empty()
        && prefixes.iter().all(|p| {
            literals
                .iter()
                .any(|l| p.as_bytes().starts_with(l.as_bytes()))
        });
    anchored.then_some(longest)
}

/// Case-insensitive keywords become a handful of case-sensitive literals, because an
/// `ascii_case_insensitive` automaton loses the SIMD searcher (30x slower, see NOTES.md).
/// Short keywords get every casing; long ones the casings people actually write.
pub(crate) fn case_variants(k: &str) -> Vec<String> {
    let letters: Vec<usize> = k
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i)
        .collect();
    if letters.len() <= 4 {
        let mut out = Vec::new();
        for mask in 0u32..(1 << letters.len()) {
            let mut b = k.as_bytes().to_vec();
            for (bit, &i) in letters.iter().enumerate() {
                b[i] = if mask & (1 << bit) != 0 {
                    b[i].to_ascii_uppercase()
                } else {
                    b[i].to_ascii_lowercase()
                };
            }
            out.push(String::from_utf8_lossy(&b).into_owned());
        }
        return out;
    }
    let lower = k.to_ascii_lowercase();
    let upper = k.to_ascii_uppercase();
    let mut title = lower.clone();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    // Capitalise after separators too: `Api_Key`, `Client-Secret`, `apiKey`-style humps.
    let mut humps = String::with_capacity(k.len());
    let mut up = true;
    for c in lower.chars() {
        humps.push(if up { c.to_ascii_uppercase() } else { c });
        up = matches!(c, '_' | '-' | ' ' | '.');
    }
    let mut camel = humps.clone();
    if let Some(first) = camel.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    vec![k.to_string(), lower, upper, title, humps, camel]
}

/// Parses packs into compiled rules, rejecting duplicate ids across packs.
pub(crate) fn compile_packs(sources: &[(&str, &str)]) -> Result<Vec<Rule>, DlpError> {
    let mut rules: Vec<Rule> = Vec::new();
    for (name, text) in sources {
        let file: PackFile = toml::from_str(text).map_err(|e| DlpError::Pack {
            pack: name.to_string(),
            msg: e.to_string(),
        })?;
        for spec in file.rule {
            let rule = Rule::compile(name, spec)?;
            if rules.iter().any(|r| r.info.id == rule.info.id) {
                return Err(DlpError::Rule {
                    rule: rule.info.id.clone(),
                    msg: "duplicate rule id".into(),
                });
            }
            rules.push(rule);
        }
    }
    Ok(rules)
}
