//! Credential routes (`[[routes]]`) and in-tunnel injections (`[[inject]]`).
//!
//! The config holds where a token is (an environment variable name or a file path), never the
//! token; tokens are read once at start by [`super::Config::resolve_secrets`]. Routes always go
//! out over verified HTTPS: a token is never sent in cleartext.

use crate::policy::host::Host;
use http::HeaderName;
use std::fmt;
use std::path::{Path, PathBuf};

/// `Authorization` scheme used when a route does not name one.
pub const DEFAULT_AUTH_SCHEME: &str = "Bearer";

/// Shortest accepted placeholder: a short one could occur by chance in an unrelated header.
pub const MIN_PLACEHOLDER_LEN: usize = 8;

/// A path prefix on the routes listener mapped to an HTTPS upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Normalized prefix: starts and ends with `/`.
    pub path: String,
    pub upstream: RouteUpstream,
    pub auth_scheme: String,
    pub token: TokenSource,
}

/// Where a route's or injection's token is: `token_env` or `token_file` (exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable name.
    Env(String),
    /// A file path (absolute).
    File(PathBuf),
}

/// A borrowed [`TokenSource`], for lookups and listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRef<'a> {
    Env(&'a str),
    File(&'a Path),
}

impl TokenSource {
    pub fn as_ref(&self) -> TokenRef<'_> {
        match self {
            TokenSource::Env(name) => TokenRef::Env(name),
            TokenSource::File(path) => TokenRef::File(path),
        }
    }
}

/// `$NAME` or `file /path`: how listings and errors name a token's source (never its value).
impl fmt::Display for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRef::Env(name) => write!(f, "${name}"),
            TokenRef::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// `https://host[:port][/base]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUpstream {
    pub host: Host,
    pub port: u16,
    /// Path prefix on the upstream without trailing `/` (empty for the root).
    pub base_path: String,
}

impl fmt::Display for RouteUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 443 {
            let hp = self.host.authority(443);
            let host = hp.strip_suffix(":443").unwrap_or(&hp);
            write!(f, "https://{host}{}", self.base_path)
        } else {
            write!(
                f,
                "https://{}{}",
                self.host.authority(self.port),
                self.base_path
            )
        }
    }
}

impl Route {
    /// Where this route's token comes from.
    pub fn token(&self) -> TokenRef<'_> {
        self.token.as_ref()
    }

    /// Maps an agent request target (`/anthropic/v1/messages?x=1`) to the upstream path and query
    /// (`/v1/messages?x=1`), or `None` if this route does not match.
    pub fn upstream_path(&self, path_and_query: &str) -> Option<String> {
        let bare = self.path.strip_suffix('/').unwrap_or(&self.path);
        let rest = if let Some(rest) = path_and_query.strip_prefix(self.path.as_str()) {
            rest
        } else if path_and_query == bare || path_and_query.starts_with(&format!("{bare}?")) {
            &path_and_query[bare.len()..]
        } else {
            return None;
        };
        Some(format!("{}/{rest}", self.upstream.base_path))
    }
}

/// Replace a placeholder with a real token in one header on requests to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inject {
    pub host: Host,
    /// 443 unless the entry names a port.
    pub port: u16,
    pub header: HeaderName,
    pub placeholder: String,
    pub token: TokenSource,
    /// Refuse requests to the host whose header lacks the placeholder.
    pub require: bool,
}

impl Inject {
    /// Where this injection's token comes from.
    pub fn token(&self) -> TokenRef<'_> {
        self.token.as_ref()
    }
}

/// Longest matching route prefix, with the upstream path and query it maps to.
pub fn find_route<'a>(routes: &'a [Route], path_and_query: &str) -> Option<(&'a Route, String)> {
    routes
        .iter()
        .filter_map(|r| r.upstream_path(path_and_query).map(|p| (r, p)))
        .max_by_key(|(r, _)| r.path.len())
}

/// Parses `https://host[:port][/base]`.
pub(crate) fn parse_upstream(s: &str) -> Result<RouteUpstream, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some(other) => {
            return Err(format!(
                "{s:?}: scheme must be https, not {other} (tokens are never sent in cleartext)"
            ))
        }
        None => return Err(format!("{s:?}: must be an absolute https:// URL")),
    }
    let auth = uri
        .authority()
        .ok_or_else(|| format!("{s:?}: missing host"))?;
    if auth.as_str().contains('@') {
        return Err(format!(
            "{s:?}: credentials in the URL are not allowed; use token_env or token_file"
        ));
    }
    if uri.query().is_some() || s.contains('#') {
        return Err(format!("{s:?}: query and fragment are not allowed"));
    }
    let host = Host::parse(auth.host()).map_err(|e| format!("{s:?}: {e}"))?;
    let port = auth.port_u16().unwrap_or(443);
    if port == 0 {
        return Err(format!("{s:?}: invalid port"));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(RouteUpstream {
        host,
        port,
        base_path,
    })
}

/// Normalizes a route prefix to `/…/`.
pub(crate) fn normalize_route_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if !p.bytes().all(|b| b.is_ascii_graphic()) || p.contains(['?', '#', '%', '\\']) {
        return Err(format!(
            "{p:?} may contain only visible ASCII without '?', '#', '%' or '\\'"
        ));
    }
    let with_slash = if p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    };
    if has_dot_or_empty_segment(&with_slash) {
        return Err(format!("{p:?} has empty, '.' or '..' segments"));
    }
    Ok(with_slash)
}

/// An empty (`//`), `.` or `..` segment: a path that does not mean what it says once an
/// upstream normalises it. Route prefixes are checked at load, request paths on the routes
/// listener per request.
pub(crate) fn has_dot_or_empty_segment(path: &str) -> bool {
    path.contains("//") || path.split('/').any(|seg| seg == "." || seg == "..")
}

/// `Authorization` scheme: an RFC 7235 token.
pub(crate) fn valid_auth_scheme(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn valid_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Headers the proxy manages itself; injecting into them would break framing or routing.
pub(crate) const FORBIDDEN_INJECT_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, upstream: &str) -> Route {
        Route {
            path: normalize_route_path(path).unwrap(),
            upstream: parse_upstream(upstream).unwrap(),
            auth_scheme: DEFAULT_AUTH_SCHEME.into(),
            token: TokenSource::Env("T".into()),
        }
    }

    #[test]
    fn upstream_urls() {
        let u = parse_upstream("https://api.anthropic.com").unwrap();
        assert_eq!(
            (u.host.to_string(), u.port, u.base_path.as_str()),
            ("api.anthropic.com".into(), 443, "")
        );
        assert_eq!(u.to_string(), "https://api.anthropic.com");
        let u = parse_upstream("https://API.example.com:8443/v1/").unwrap();
        assert_eq!(u.to_string(), "https://api.example.com:8443/v1");
        let u = parse_upstream("https://[::1]:9443").unwrap();
        assert_eq!(u.to_string(), "https://[::1]:9443");
        for bad in [
            "http://api.example.com",
            "api.example.com",
            "https://u:p@x.com",
            "https://x.com/?a=1",
            "ftp://x.com",
            "https://x.com:0",
        ] {
            assert!(parse_upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_stripping_and_longest_match() {
        let routes = [
            route("/anthropic/", "https://api.anthropic.com"),
            route("/anthropic/beta", "https://b.example/x"),
        ];
        let (r, p) = find_route(&routes, "/anthropic/v1/messages?beta=true").unwrap();
        assert_eq!(
            (r.path.as_str(), p.as_str()),
            ("/anthropic/", "/v1/messages?beta=true")
        );
        let (r, p) = find_route(&routes, "/anthropic/beta/models").unwrap();
        assert_eq!(
            (r.path.as_str(), p.as_str()),
            ("/anthropic/beta/", "/x/models")
        );
        assert_eq!(find_route(&routes, "/anthropic").unwrap().1, "/");
        assert_eq!(find_route(&routes, "/anthropic?x").unwrap().1, "/?x");
        assert!(find_route(&routes, "/anthropicx/v1").is_none());
        assert!(find_route(&routes, "/other/").is_none());
    }

    #[test]
    fn route_paths() {
        assert_eq!(normalize_route_path("/a").unwrap(), "/a/");
        assert_eq!(normalize_route_path("/").unwrap(), "/");
        for bad in ["a/", "/a//b", "/a/../b", "/a b/", "/a?x", "/%2e/"] {
            assert!(normalize_route_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_env_name("CLAUDE_BOTTLE_OAUTH_TOKEN"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
        assert!(valid_auth_scheme("Bearer"));
        assert!(!valid_auth_scheme("Bear er"));
        assert!(!valid_auth_scheme(""));
    }
}
