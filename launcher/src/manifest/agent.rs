//! The agent manifest: which bottle to run in, which skills to mount, and the system prompt.
//! The file doubles as a Claude Code subagent file, so that format's keys are accepted and ignored.

use serde::Serialize;

use super::fields::{check_keys, get, mapping, string, string_list};
use super::rules;
use super::yaml::{Node, YamlError};

/// Where an agent file was found; repo agents are less trusted (they may only pick a home bottle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Home,
    Repo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub name: String,
    pub origin: Origin,
    /// `None`: the agent names no bottle (the `default` bottle is used if the user has one).
    pub bottle: Option<String>,
    pub skills: Vec<String>,
    pub system_prompt: String,
}

const AGENT_KEYS: &[&str] = &["bottle", "skills"];
/// Claude Code subagent frontmatter keys: meaningful to Claude Code, not to the launcher.
const SUBAGENT_KEYS: &[&str] = &[
    "name",
    "description",
    "model",
    "color",
    "memory",
    "tools",
    "disallowedTools",
    "permissionMode",
    "hooks",
    "mcpServers",
];

impl Agent {
    pub fn from_parts(
        name: &str,
        origin: Origin,
        root: &Node,
        body: &str,
    ) -> Result<Agent, YamlError> {
        let entries = mapping(root, "agent frontmatter")?;
        check_keys(entries, AGENT_KEYS, SUBAGENT_KEYS, "the agent")?;
        let bottle = match get(entries, "bottle") {
            Some(node) => {
                let bottle = string(node, "bottle")?;
                if !rules::manifest_name(&bottle) {
                    return Err(YamlError::new(
                        node.line(),
                        format!("bottle name `{bottle}` must match [a-z][a-z0-9-]*"),
                    ));
                }
                Some(bottle)
            }
            None => None,
        };
        let mut skills = Vec::new();
        if let Some(node) = get(entries, "skills") {
            for (skill, line) in string_list(node, "skills")? {
                if !rules::manifest_name(&skill) {
                    return Err(YamlError::new(
                        line,
                        format!("skill name `{skill}` must match [a-z][a-z0-9-]*"),
                    ));
                }
                skills.push(skill);
            }
        }
        Ok(Agent {
            name: name.to_owned(),
            origin,
            bottle,
            skills,
            system_prompt: body.trim().to_owned(),
        })
    }
}
