//! Bottle and agent manifests, read exactly as the seeds' Python claude-bottle wrote them.

pub mod agent;
pub mod bottle;
pub mod catalog;
mod fields;
pub mod frontmatter;
pub mod rules;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use agent::{Agent, Origin};
pub use bottle::{Bottle, GitRemote, GitUser, Route};
pub use catalog::{Catalog, Resolved};
pub use rules::Role;

/// Errors name the file and line so the author can fix the manifest in one go.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no {kind} named `{name}` (looked in {searched})")]
    NotFound {
        kind: &'static str,
        name: String,
        searched: String,
    },
    #[error("`{name}` is not a valid {kind} name: names must match [a-z][a-z0-9-]*")]
    BadName { kind: &'static str, name: String },
    #[error("cannot find the claude-bottle home: set CLAUDE_BOTTLE_HOME or HOME")]
    NoHome,
}

impl ManifestError {
    fn at(path: &Path, line: usize, message: String) -> Self {
        ManifestError::Invalid {
            path: path.to_owned(),
            line,
            message,
        }
    }
}

/// Reads a manifest file into its parsed frontmatter and body, mapping YAML lines to file lines.
fn read_manifest(path: &Path) -> Result<(yaml::Node, String), ManifestError> {
    let text = read_bounded(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let split =
        frontmatter::split(&text).map_err(|e| ManifestError::at(path, e.line, e.message))?;
    let offset = split.yaml_first_line - 1;
    let node =
        yaml::parse(split.yaml).map_err(|e| ManifestError::at(path, e.line + offset, e.message))?;
    Ok((shift_lines(node, offset), split.body.to_owned()))
}

/// Largest manifest read. An agent's body becomes one argument of the agent's command line
/// (Linux caps one argument at 128 KiB), and no prompt or bottle is anywhere near this; the
/// bound also keeps a manifest that is a device or a huge file from exhausting memory.
pub const MAX_MANIFEST_BYTES: u64 = 128 * 1024;

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} KiB", MAX_MANIFEST_BYTES / 1024),
        ));
    }
    Ok(text)
}

fn shift_lines(node: yaml::Node, offset: usize) -> yaml::Node {
    use yaml::Node;
    match node {
        Node::Scalar(mut s) => {
            s.line += offset;
            Node::Scalar(s)
        }
        Node::Seq { items, line } => Node::Seq {
            items: items.into_iter().map(|n| shift_lines(n, offset)).collect(),
            line: line + offset,
        },
        Node::Map { entries, line } => Node::Map {
            entries: entries
                .into_iter()
                .map(|(mut k, v)| {
                    k.line += offset;
                    (k, shift_lines(v, offset))
                })
                .collect(),
            line: line + offset,
        },
    }
}

/// Loads a bottle file; `name` is the file stem.
pub fn load_bottle(path: &Path, name: &str) -> Result<Bottle, ManifestError> {
    let (node, _body) = read_manifest(path)?;
    Bottle::from_yaml(name, &node).map_err(|e| ManifestError::at(path, e.line, e.message))
}

/// Loads an agent file; `name` is the file stem.
pub fn load_agent(path: &Path, name: &str, origin: Origin) -> Result<Agent, ManifestError> {
    let (node, body) = read_manifest(path)?;
    Agent::from_parts(name, origin, &node, &body)
        .map_err(|e| ManifestError::at(path, e.line, e.message))
}

#[cfg(test)]
mod tests;
