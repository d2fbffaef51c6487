//! Finds manifests: bottles and agents in the user's home, agents (only) in the current repo.
//!
//! The trust boundary: a cloned repository may ship agents (a prompt and a bottle *name*), but never
//! bottles, because a bottle decides credentials, egress and git remotes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{load_agent, load_bottle, rules, Agent, Bottle, ManifestError, Origin};

/// The bottle used when an agent names none and the user has no `default` bottle.
pub const DEFAULT_BOTTLE: &str = "default";

/// `$CLAUDE_BOTTLE_HOME`, else `$HOME/.claude-bottle`.
pub fn home_dir() -> Result<PathBuf, ManifestError> {
    if let Some(dir) = std::env::var_os("CLAUDE_BOTTLE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".claude-bottle"))
        .ok_or(ManifestError::NoHome)
}

/// The git root containing `cwd` (a `.git` dir or file), else `cwd` itself.
pub fn repo_root(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(cwd)
        .to_path_buf()
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub agents: BTreeMap<String, (PathBuf, Origin)>,
    pub bottles: BTreeMap<String, PathBuf>,
    /// Things skipped or shadowed; the CLI prints them to stderr.
    pub warnings: Vec<String>,
}

/// An agent with the bottle it runs in.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub agent: Agent,
    pub bottle: Bottle,
}

impl Catalog {
    pub fn discover(home: &Path, cwd: &Path) -> Catalog {
        let mut catalog = Catalog::default();
        for (name, path) in catalog.scan(&home.join("bottles"), "bottle") {
            catalog.bottles.insert(name, path);
        }
        for (name, path) in catalog.scan(&home.join("agents"), "agent") {
            catalog.agents.insert(name, (path, Origin::Home));
        }
        let repo = repo_root(cwd).join(".claude-bottle");
        if same_dir(&repo, home) {
            return catalog;
        }
        let repo_bottles = repo.join("bottles");
        if repo_bottles.is_dir() {
            catalog.warnings.push(format!(
                "ignoring {}: bottles are read only from {} (a repository cannot choose credentials, egress or git remotes)",
                repo_bottles.display(),
                home.join("bottles").display()
            ));
        }
        for (name, path) in catalog.scan(&repo.join("agents"), "agent") {
            if let Err(why) = inside_repo(&path, &repo_root(cwd)) {
                catalog
                    .warnings
                    .push(format!("ignoring repo agent {}: {why}", path.display()));
                continue;
            }
            if let Some((home_path, _)) = catalog.agents.get(&name) {
                catalog.warnings.push(format!(
                    "repo agent {} is shadowed by {}",
                    path.display(),
                    home_path.display()
                ));
                continue;
            }
            catalog.agents.insert(name, (path, Origin::Repo));
        }
        catalog
    }

    /// `*.md` files with valid names; others are skipped with a warning.
    fn scan(&mut self, dir: &Path, kind: &str) -> Vec<(String, PathBuf)> {
        let Ok(read) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in read.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("md") {
                continue;
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if rules::manifest_name(&stem) {
                found.push((stem, path));
            } else {
                self.warnings.push(format!(
                    "skipping {kind} {}: names must match [a-z][a-z0-9-]*",
                    path.display()
                ));
            }
        }
        found.sort();
        found
    }

    pub fn load_agent(&self, name: &str) -> Result<Agent, ManifestError> {
        if !rules::manifest_name(name) {
            return Err(ManifestError::BadName {
                kind: "agent",
                name: name.to_owned(),
            });
        }
        let (path, origin) = self
            .agents
            .get(name)
            .ok_or_else(|| ManifestError::NotFound {
                kind: "agent",
                name: name.to_owned(),
                searched: "~/.claude-bottle/agents and <repo>/.claude-bottle/agents".to_owned(),
            })?;
        load_agent(path, name, *origin)
    }

    pub fn load_bottle(&self, name: &str) -> Result<Bottle, ManifestError> {
        match self.bottles.get(name) {
            Some(path) => load_bottle(path, name),
            None => Err(ManifestError::NotFound {
                kind: "bottle",
                name: name.to_owned(),
                searched: "~/.claude-bottle/bottles".to_owned(),
            }),
        }
    }

    /// The agent and its bottle. An agent naming no bottle gets `default` (empty if absent).
    pub fn resolve(&self, agent_name: &str) -> Result<Resolved, ManifestError> {
        let agent = self.load_agent(agent_name)?;
        let bottle = match &agent.bottle {
            Some(name) => self.load_bottle(name)?,
            None if self.bottles.contains_key(DEFAULT_BOTTLE) => {
                self.load_bottle(DEFAULT_BOTTLE)?
            }
            None => Bottle {
                name: DEFAULT_BOTTLE.to_owned(),
                ..Bottle::default()
            },
        };
        Ok(Resolved { agent, bottle })
    }
}

/// A repository's agent must be a regular file inside the repository. A cloned repo is not
/// trusted: a link named `review.md` pointing at `~/.git-credentials` or `/proc/self/environ`
/// would put that file into the agent's system prompt (its command line, the model's input).
fn inside_repo(path: &Path, root: &Path) -> Result<(), String> {
    let real = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve it: {e}"))?;
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the repository root: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "it resolves to {}, outside the repository {}",
            real.display(),
            root.display()
        ));
    }
    if !std::fs::metadata(&real).is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".to_owned());
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
