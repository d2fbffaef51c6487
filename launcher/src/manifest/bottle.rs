//! The bottle manifest: what an agent may reach (egress), which credentials the proxy holds for it
//! (routes), extra env, and git remotes. Bottles come only from the user's home (trust boundary).

use serde::Serialize;

use super::fields::{self, check_keys, get, mapping, string, string_list, string_map};
use super::rules::{self, Role};
use super::yaml::{Node, YamlError};

/// A credential route: the agent dials `http://cred-proxy:9099<path>`, the proxy adds the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub path: String,
    pub upstream: String,
    pub auth_scheme: String,
    /// Name of the host environment variable holding the token. Never the token itself.
    pub token_ref: String,
    pub roles: Vec<Role>,
}

/// A git remote the bottle may push to (served by git-gate in the seeds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitRemote {
    pub name: String,
    pub upstream: String,
    pub identity_file: String,
    pub known_host_key: String,
    pub extra_hosts: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitUser {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bottle {
    pub name: String,
    pub env: Vec<(String, String)>,
    pub allowlist: Vec<String>,
    pub routes: Vec<Route>,
    pub git: Vec<GitRemote>,
    pub git_user: Option<GitUser>,
}

const BOTTLE_KEYS: &[&str] = &["env", "egress", "cred_proxy", "git", "git_user"];
const ROUTE_KEYS: &[&str] = &["path", "upstream", "auth_scheme", "token_ref", "role"];
const GIT_KEYS: &[&str] = &[
    "Name",
    "Upstream",
    "IdentityFile",
    "KnownHostKey",
    "ExtraHosts",
];

impl Bottle {
    /// Builds a bottle from its parsed frontmatter. The body of a bottle file is documentation only.
    pub fn from_yaml(name: &str, root: &Node) -> Result<Bottle, YamlError> {
        let entries = mapping(root, "bottle frontmatter")?;
        if let Some((key, _)) = entries.iter().find(|(k, _)| k.value == "tokens") {
            return Err(YamlError::new(
                key.line,
                "`tokens` is the legacy credential format and is no longer read; move each token to \
                 `cred_proxy.routes` (path, upstream, auth_scheme, token_ref) so the agent never holds it",
            ));
        }
        check_keys(entries, BOTTLE_KEYS, &[], "the bottle")?;
        let mut bottle = Bottle {
            name: name.to_owned(),
            ..Bottle::default()
        };
        if let Some(env) = get(entries, "env") {
            for (key, value, line) in string_map(env, "env")? {
                rules::env_name(&key).map_err(|m| YamlError::new(line, m))?;
                bottle.env.push((key, value));
            }
        }
        if let Some(egress) = get(entries, "egress") {
            let egress = mapping(egress, "egress")?;
            check_keys(egress, &["allowlist"], &[], "`egress`")?;
            if let Some(list) = get(egress, "allowlist") {
                for (entry, line) in string_list(list, "egress.allowlist")? {
                    let normalized =
                        rules::allow_entry(&entry).map_err(|m| YamlError::new(line, m))?;
                    bottle.allowlist.push(normalized);
                }
            }
        }
        if let Some(cred) = get(entries, "cred_proxy") {
            let cred = mapping(cred, "cred_proxy")?;
            check_keys(cred, &["routes"], &[], "`cred_proxy`")?;
            if let Some(routes) = get(cred, "routes") {
                bottle.routes = routes_from(routes)?;
            }
        }
        if let Some(git) = get(entries, "git") {
            bottle.git = git_from(git)?;
        }
        if let Some(user) = get(entries, "git_user") {
            let user_entries = mapping(user, "git_user")?;
            check_keys(user_entries, &["name", "email"], &[], "`git_user`")?;
            bottle.git_user = Some(GitUser {
                name: required(user_entries, "name", "git_user", user.line())?,
                email: required(user_entries, "email", "git_user", user.line())?,
            });
        }
        Ok(bottle)
    }
}

fn required(
    entries: &[(super::yaml::Scalar, Node)],
    key: &str,
    what: &str,
    line: usize,
) -> Result<String, YamlError> {
    match get(entries, key) {
        Some(node) => string(node, &format!("{what}.{key}")),
        None => Err(YamlError::new(line, format!("`{what}` is missing `{key}`"))),
    }
}

fn seq<'a>(node: &'a Node, what: &str) -> Result<&'a [Node], YamlError> {
    match node {
        Node::Seq { items, .. } => Ok(items),
        other => Err(YamlError::new(
            other.line(),
            format!("`{what}` must be a list, found {}", other.kind()),
        )),
    }
}

fn routes_from(node: &Node) -> Result<Vec<Route>, YamlError> {
    let mut routes: Vec<Route> = Vec::new();
    for item in seq(node, "cred_proxy.routes")? {
        let line = item.line();
        let entries = mapping(item, "cred_proxy.routes entry")?;
        check_keys(entries, ROUTE_KEYS, &[], "a `cred_proxy.routes` entry")?;
        let what = "cred_proxy.routes entry";
        let at = |m: String| YamlError::new(line, m);
        let path = rules::route_path(&required(entries, "path", what, line)?).map_err(at)?;
        let upstream = required(entries, "upstream", what, line)?;
        rules::upstream_host(&upstream).map_err(at)?;
        let auth_scheme = required(entries, "auth_scheme", what, line)?;
        rules::auth_scheme(&auth_scheme).map_err(at)?;
        let token_ref = required(entries, "token_ref", what, line)?;
        rules::env_name(&token_ref).map_err(at)?;
        let mut roles = Vec::new();
        if let Some(role) = get(entries, "role") {
            for (name, role_line) in fields::one_or_many(role, "role")? {
                let role = Role::parse(&name).map_err(|m| YamlError::new(role_line, m))?;
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        if routes.iter().any(|r| r.path == path) {
            return Err(at(format!("two routes have the path `{path}`")));
        }
        for role in roles.iter().filter(|r| r.is_singleton()) {
            if routes.iter().any(|r| r.roles.contains(role)) {
                return Err(at(format!(
                    "role `{}` may be given to one route only",
                    role.as_str()
                )));
            }
        }
        routes.push(Route {
            path,
            upstream,
            auth_scheme,
            token_ref,
            roles,
        });
    }
    Ok(routes)
}

fn git_from(node: &Node) -> Result<Vec<GitRemote>, YamlError> {
    let mut remotes: Vec<GitRemote> = Vec::new();
    for item in seq(node, "git")? {
        let line = item.line();
        let entries = mapping(item, "git entry")?;
        check_keys(entries, GIT_KEYS, &[], "a `git` entry")?;
        let name = required(entries, "Name", "git entry", line)?;
        rules::remote_name(&name).map_err(|m| YamlError::new(line, m))?;
        if remotes.iter().any(|r| r.name == name) {
            return Err(YamlError::new(
                line,
                format!("two git entries are named `{name}`"),
            ));
        }
        let mut extra_hosts = Vec::new();
        if let Some(hosts) = get(entries, "ExtraHosts") {
            for (host, ip, host_line) in string_map(hosts, "ExtraHosts")? {
                let pair =
                    rules::extra_host(&host, &ip).map_err(|m| YamlError::new(host_line, m))?;
                extra_hosts.push(pair);
            }
        }
        remotes.push(GitRemote {
            name,
            upstream: required(entries, "Upstream", "git entry", line)?,
            identity_file: required(entries, "IdentityFile", "git entry", line)?,
            known_host_key: required(entries, "KnownHostKey", "git entry", line)?,
            extra_hosts,
        });
    }
    Ok(remotes)
}
