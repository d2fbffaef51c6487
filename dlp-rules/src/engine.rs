//! The compiled engine: rules, known secrets and the prefilter over both. Built once, shared
//! behind an `Arc` by every connection (it is `Send + Sync`; per-scan state lives in scanners).

use std::path::Path;
use std::sync::Arc;

use crate::error::DlpError;
use crate::filter::MIN_TEXT_RUN;
use crate::finding::{Finding, Location};
use crate::known::{self, KnownSecret, MIN_KNOWN_SECRET_LEN};
use crate::prefilter::{Prefilter, Target};
use crate::required::{self, ByteSet};
use crate::rule::{compile_packs, Rule, RuleInfo, Severity};
use crate::scan::known::RawKnown;
use crate::scan::plain::with_escaped_spellings;
use crate::scan::Hit;
use crate::tail::Tails;

include!(concat!(env!("OUT_DIR"), "/packs.rs"));

/// The rule packs compiled into this library, as `(name, toml)`.
pub fn embedded_packs() -> &'static [(&'static str, &'static str)] {
    EMBEDDED_PACKS
}

/// Worst-case growth of a secret's bytes through the escape layer that the streaming overlap is
/// sized for (percent-encoding every byte). Longer-winded encodings (`\uXXXX` for every char) are
/// still found whenever the whole encoded match lies in one scan segment.
pub(crate) const EXPANSION: usize = 3;

pub struct Engine {
    pub(crate) rules: Vec<Arc<Rule>>,
    pub(crate) keywordless: Vec<u32>,
    pub(crate) known_ids: Vec<String>,
    known: Vec<KnownSecret>,
    pub(crate) prefilter: Prefilter,
    /// Known-secret literals alone, for the *raw* bytes of every view the escape layer
    /// rewrote: decoding (`+` as space in forms, `\u0041` glued to a hex encoding) can destroy
    /// a literal that the raw bytes plainly carry. `None` without known secrets.
    pub(crate) known_raw: Option<RawKnown>,
    /// Rules that share their exact keyword set (seven URL-credential rules on `://`) are gated
    /// by one multi-pattern regex: a window where none of them can match costs one search
    /// instead of one per rule. `gate_of[rule]` indexes `gates`.
    pub(crate) gates: Vec<Gate>,
    pub(crate) gate_of: Vec<Option<u32>>,
    /// What must follow a rule's keyword for a hit to open a window (`tail.rs`).
    pub(crate) tails: Tails,
    /// Per rule: `Rule::reach`, the length of the window that starts at a hit, for rules whose
    /// matches start with their literals (`None`: `window` bytes on both sides).
    pub(crate) reach: Vec<Option<usize>>,
    /// Every known secret is printable ASCII and no rule can match fewer than
    /// `MIN_TEXT_RUN` bytes, so only the text segments of a decoded payload need a scan (see
    /// `filter::text_segments`).
    pub(crate) text_only: bool,
    /// Longest match any target can produce, in decoded bytes.
    pub(crate) max_match: usize,
    /// Views with plain JSON escapes only are scanned raw (`scan/plain.rs`): no keywordless
    /// rule, no literal holding a `\` or a byte a plain escape decodes to (but `"` in a rule
    /// keyword, which also goes in spelled with `\"`).
    pub(crate) plain: bool,
    /// Benchmarks only (`matching_core_only`): no escape layer, no base64/hex runs.
    #[cfg(feature = "bench-knobs")]
    core_only: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .field("keywordless", &self.keywordless.len())
            .field("known_secrets", &self.known_ids)
            .field("prefilter_patterns", &self.prefilter.pattern_count())
            .field("prefilter_groups", &self.prefilter.group_count())
            .finish()
    }
}

impl Engine {
    /// All packs embedded at build time.
    pub fn builtin() -> Result<Engine, DlpError> {
        Engine::from_packs(EMBEDDED_PACKS)
    }

    /// Embedded packs plus every `*.toml` in `dir` (read now; ids must stay unique).
    pub fn builtin_and_dir(dir: &Path) -> Result<Engine, DlpError> {
        let extra = read_pack_dir(dir)?;
        let mut all: Vec<(&str, &str)> = EMBEDDED_PACKS.to_vec();
        all.extend(extra.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        Engine::from_packs(&all)
    }

    /// Compiles `(name, toml)` packs.
    pub fn from_packs(sources: &[(&str, &str)]) -> Result<Engine, DlpError> {
        let rules = compile_packs(sources)?;
        if rules.is_empty() {
            return Err(DlpError::NoRules);
        }
        Engine::assemble(rules.into_iter().map(Arc::new).collect(), Vec::new())
    }

    /// Adds exact-match secrets (the credentials the proxy injects). Values shorter than
    /// `MIN_KNOWN_SECRET_LEN` bytes are skipped: they would match ordinary text.
    pub fn with_known_secrets(self, secrets: Vec<KnownSecret>) -> Result<Engine, DlpError> {
        let mut known = self.known;
        known.extend(secrets);
        Engine::assemble(self.rules, known)
    }

    /// A copy without the named rules (per-rule `off` overrides, per-host exemptions).
    pub fn without_rules(&self, ids: &[&str]) -> Result<Engine, DlpError> {
        for id in ids {
            if !self.rules.iter().any(|r| r.info.id == *id) {
                return Err(DlpError::Rule {
                    rule: (*id).to_string(),
                    msg: "unknown rule id".into(),
                });
            }
        }
        let rules = self
            .rules
            .iter()
            .filter(|r| !ids.contains(&r.info.id.as_str()))
            .cloned()
            .collect();
        Engine::assemble(rules, self.known.clone())
    }

    fn assemble(rules: Vec<Arc<Rule>>, known: Vec<KnownSecret>) -> Result<Engine, DlpError> {
        let mut literals = Vec::new();
        let mut keywordless = Vec::new();
        let mut max_match = 0;
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| DlpError::NoRules)?;
            if r.literals.is_empty() {
                keywordless.push(i);
            }
            literals.extend(
                r.literals
                    .iter()
                    .map(|l| (l.as_bytes().to_vec(), Target::Rule(i))),
            );
            max_match = max_match.max(r.max_len);
        }
        let known: Vec<KnownSecret> = known
            .into_iter()
            .filter(|k| {
                secrecy::ExposeSecret::expose_secret(&k.value).len() >= MIN_KNOWN_SECRET_LEN
            })
            .collect();
        let mut known_lits = Vec::new();
        for (i, k) in known.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| DlpError::NoRules)?;
            for lit in known::encodings(k) {
                max_match = max_match.max(lit.len());
                known_lits.push((lit, Target::Known(i)));
            }
        }
        let known_raw = if known_lits.is_empty() {
            None
        } else {
            literals.extend(known_lits.iter().cloned());
            Some(RawKnown::new(known_lits)?)
        };
        let plain = keywordless.is_empty() && with_escaped_spellings(&mut literals);
        let prefilter = Prefilter::build(literals)?;
        let (gates, gate_of) = build_gates(&rules);
        let tails = Tails::build(rules.iter().map(|r| r.tail.as_ref()));
        let reach = rules.iter().map(|r| r.reach).collect();
        let known_ids = known.iter().map(|k| k.id.clone()).collect();
        let text_only = rules.iter().all(|r| r.min_len >= MIN_TEXT_RUN)
            && known.iter().all(|k| {
                let v = secrecy::ExposeSecret::expose_secret(&k.value).as_bytes();
                v.iter().all(|&b| (0x20..0x7f).contains(&b))
            });
        Ok(Engine {
            rules,
            keywordless,
            known_ids,
            known,
            prefilter,
            known_raw,
            gates,
            gate_of,
            tails,
            reach,
            text_only,
            max_match,
            plain,
            #[cfg(feature = "bench-knobs")]
            core_only: false,
        })
    }

    /// For benchmarks (feature `bench-knobs`, which no shipped binary enables): the same
    /// engine without its decoders, so the rule regexes run over the raw bytes alone, the job
    /// Hyperscan does in `benches/dlp_peers.py`. Measures what the decoding layers cost; a
    /// scan in this mode misses every escaped or encoded secret. Apply it last: an engine that
    /// `with_known_secrets` or `without_rules` builds has its decoders on.
    #[cfg(feature = "bench-knobs")]
    pub fn matching_core_only(mut self) -> Engine {
        self.core_only = true;
        self
    }

    /// Whether the escape layer and the base64/hex runs are scanned: always, but in a
    /// benchmark of the matching core.
    #[inline(always)]
    pub(crate) fn decoders(&self) -> bool {
        #[cfg(feature = "bench-knobs")]
        {
            !self.core_only
        }
        #[cfg(not(feature = "bench-knobs"))]
        {
            true
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    /// Ids of rules that have no keyword and so run over every byte (kept few; see docs/DLP.md).
    pub fn keywordless_rules(&self) -> impl Iterator<Item = &str> {
        self.keywordless
            .iter()
            .map(|&i| self.rules[i as usize].info.id.as_str())
    }

    /// Number of literal patterns and Teddy groups in the prefilter.
    pub fn prefilter_shape(&self) -> (usize, usize) {
        (self.prefilter.pattern_count(), self.prefilter.group_count())
    }

    /// Scans a request target (path and query, or an absolute URL with userinfo). Query `+`
    /// counts as a space.
    pub fn scan_url(&self, url: &str) -> Vec<Finding> {
        self.scan_bytes(url.as_bytes(), true, Location::Url)
    }

    /// Scans one header as `name: value`, so context rules (`x-api-key: ...`) see the name.
    /// `Basic` credentials are also decoded and scanned, since they are too short for the
    /// generic base64 layer.
    pub fn scan_header(&self, name: &str, value: &[u8]) -> Vec<Finding> {
        // Every header of every request comes here, nearly all clean: a short line is built on
        // the stack, and the location (an owned, lower-cased name) only once there is a finding.
        let len = name.len() + 2 + value.len();
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let line: &mut [u8] = match stack.get_mut(..len) {
            Some(l) => l,
            None => {
                heap.resize(len, 0);
                &mut heap
            }
        };
        let (n, rest) = line.split_at_mut(name.len());
        n.copy_from_slice(name.as_bytes());
        rest[..2].copy_from_slice(b": ");
        rest[2..].copy_from_slice(value);
        let mut hits = Vec::new();
        self.scan_view(line, false, &mut hits);
        let decoded = basic_credentials(value);
        if hits.is_empty() && decoded.is_none() {
            return Vec::new();
        }
        let loc = Location::Header {
            name: name.to_ascii_lowercase(),
        };
        let mut findings: Vec<Finding> = hits
            .into_iter()
            .map(|h| self.finding(h, &loc, 0, ""))
            .collect();
        if let Some(decoded) = decoded {
            let offset = (name.len() + 2 + 6) as u64;
            for mut f in self.scan_bytes(&decoded, false, loc.clone()) {
                f.offset = offset;
                f.length = value.len().saturating_sub(6);
                f.encoding = if f.encoding.is_empty() {
                    "basic".into()
                } else {
                    format!("basic+{}", f.encoding)
                };
                if !findings.iter().any(|g| g.rule_id == f.rule_id) {
                    findings.push(f);
                }
            }
        }
        findings
    }

    /// One-shot scan of a complete, bounded input (URL, header, WebSocket text already whole).
    pub fn scan_bytes(&self, data: &[u8], form: bool, location: Location) -> Vec<Finding> {
        let mut hits = Vec::new();
        self.scan_view(data, form, &mut hits);
        hits.into_iter()
            .map(|h| self.finding(h, &location, 0, ""))
            .collect()
    }

    pub(crate) fn finding(&self, h: Hit, location: &Location, base: u64, outer: &str) -> Finding {
        let (rule_id, severity) = match h.target {
            Target::Rule(r) => {
                let info = &self.rules[r as usize].info;
                (info.id.clone(), info.severity)
            }
            Target::Known(k) => (
                format!("known-secret:{}", self.known_ids[k as usize]),
                Severity::Critical,
            ),
        };
        let encoding = match (outer.is_empty(), h.encoding.is_empty()) {
            (true, _) => h.encoding,
            (false, true) => outer.to_string(),
            (false, false) => format!("{outer}+{}", h.encoding),
        };
        Finding {
            rule_id,
            location: location.clone(),
            offset: base + h.start as u64,
            length: h.end - h.start,
            preview: h.preview,
            severity,
            encoding,
            validated: h.validated,
        }
    }
}

/// One multi-pattern regex over rules that share their keywords, and the byte all of them
/// require beyond the keyword (checked first: one `memchr` instead of a DFA pass).
#[derive(Debug)]
pub(crate) struct Gate {
    pub regex: regex_automata::meta::Regex,
    pub confirm: Option<u8>,
}

/// Groups rules by identical (non-empty) literal sets; each group of two or more gets a
/// multi-pattern regex of its members. A group whose union does not compile simply has no gate.
fn build_gates(rules: &[Arc<Rule>]) -> (Vec<Gate>, Vec<Option<u32>>) {
    use regex_automata::meta::Regex;
    use regex_automata::util::syntax;
    let mut by_lits: std::collections::BTreeMap<&[String], Vec<usize>> = Default::default();
    for (i, r) in rules.iter().enumerate() {
        if !r.literals.is_empty() {
            by_lits.entry(r.literals.as_slice()).or_default().push(i);
        }
    }
    let mut gates = Vec::new();
    let mut gate_of = vec![None; rules.len()];
    for members in by_lits.values().filter(|m| m.len() >= 2) {
        let pats: Vec<&str> = members
            .iter()
            .map(|&i| rules[i].info.regex.as_str())
            .collect();
        let Ok(re) = Regex::builder()
            .syntax(syntax::Config::new().utf8(false).unicode(false))
            .configure(
                Regex::config()
                    .utf8_empty(false)
                    // The union of the members' counted repetitions needs more than the default
                    // 2 MiB to build a lazy DFA at all (it fell back to the PikeVM, 10x slower).
                    // A cap, not an allocation: the cache grows with the states visited.
                    .hybrid_cache_capacity(4 << 20)
                    .dfa(false)
                    .onepass(false)
                    .backtrack(false),
            )
            .build_many(&pats)
        else {
            continue;
        };
        let Ok(g) = u32::try_from(gates.len()) else {
            break;
        };
        let shared = members
            .iter()
            .fold(ByteSet::ALL, |acc, &i| acc.intersect(rules[i].required));
        gates.push(Gate {
            regex: re,
            confirm: required::confirm_byte(shared, &rules[members[0]].literals),
        });
        for &i in members {
            gate_of[i] = Some(g);
        }
    }
    (gates, gate_of)
}

fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let v = value
        .strip_prefix(b"Basic ")
        .or_else(|| value.strip_prefix(b"basic "))?;
    base64::engine::general_purpose::STANDARD
        .decode(v.trim_ascii())
        .ok()
}

/// Reads every `*.toml` in `dir` as `(file stem, text)`, sorted by name.
pub fn read_pack_dir(dir: &Path) -> Result<Vec<(String, String)>, DlpError> {
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("pack")
            .to_string();
        packs.push((name, std::fs::read_to_string(&path)?));
    }
    packs.sort();
    Ok(packs)
}
