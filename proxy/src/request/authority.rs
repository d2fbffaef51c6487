//! The request's authority against the tunnel's or the URI's: the upstream URI built from
//! parts already parsed, ports `http` lets through unchecked, and the Host / `:authority`
//! checks that stop domain fronting.

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Uri};
use hyper::body::Incoming;

use crate::policy::Target;
use crate::state::Proxy;

/// `https://<tunnel authority><path and query of the request>`, from parts already parsed
/// (no formatting and re-parsing per request).
pub(super) fn upstream_uri(authority: Option<Authority>, req: &Uri) -> Option<Uri> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTPS);
    parts.authority = Some(authority?);
    parts.path_and_query = match req.path_and_query() {
        None => Some(PathAndQuery::from_static("/")),
        // Origin form only: `OPTIONS *` (asterisk form) has no upstream resource to name.
        Some(p) if p.as_str().starts_with('/') => Some(p.clone()),
        Some(_) => return None,
    };
    Uri::from_parts(parts).ok()
}

/// Whether an authority names a port that is not one (`host:99999`, `host:8080x`): `http`
/// parses those with no port at all. Userinfo is skipped; an empty port (`host:`) means the
/// default, as RFC 3986 has it.
pub(super) fn port_is_malformed(a: &Authority) -> bool {
    let s = a.as_str();
    let host_port = s.rsplit_once('@').map_or(s, |(_, hp)| hp);
    let after_host = host_port
        .rsplit_once(']')
        .map_or(host_port, |(_, rest)| rest);
    after_host
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty())
        && a.port_u16().is_none()
}

pub(super) fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
}

/// The Host header (HTTP/1) or `:authority` (HTTP/2) must name the tunnel's host and port.
pub(super) fn authority_matches(
    req: &Request<Incoming>,
    t: &Target,
    proxy: &Proxy,
) -> Result<(), String> {
    let from_uri = req.uri().authority().map(|a| a.as_str());
    let from_host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
    let mut seen = false;
    for authority in [from_uri, from_host].into_iter().flatten() {
        seen = true;
        if !proxy.policy.same_target(authority, 443, t) {
            return Err(format!(
                "request names {authority:?} inside a tunnel opened for {}",
                t.authority()
            ));
        }
    }
    if seen {
        Ok(())
    } else {
        Err("request has no Host or :authority".into())
    }
}

pub(super) fn same_authority(
    host_header: &HeaderValue,
    uri_authority: &str,
    default_port: u16,
    proxy: &Proxy,
) -> bool {
    let Ok(h) = host_header.to_str() else {
        return false;
    };
    proxy.policy.same_authority(h, uri_authority, default_port)
}

#[cfg(test)]
mod tests {
    #[test]
    fn malformed_ports_are_told_apart_from_userinfo_brackets_and_empty_ports() {
        let bad = |a: &str| super::port_is_malformed(&a.parse().unwrap());
        for a in [
            "h.test:99999",
            "h.test:8080x",
            "h.test:65536",
            "[::1]:70000",
            "u:p@h.test:9x",
        ] {
            assert!(bad(a), "{a}");
        }
        for a in [
            "h.test",
            "h.test:8080",
            "h.test:",
            "u:pw@h.test",
            "u:pw@h.test:81",
            "[::1]",
            "[::1]:443",
        ] {
            assert!(!bad(a), "{a}");
        }
    }

    use super::*;

    fn authority() -> Option<Authority> {
        Authority::try_from("api.example.com:443").ok()
    }

    #[test]
    fn upstream_uri_keeps_path_and_query_of_the_request() {
        let req: Uri = "/v1/messages?beta=true".parse().unwrap();
        let uri = upstream_uri(authority(), &req).unwrap();
        assert_eq!(uri, "https://api.example.com:443/v1/messages?beta=true");
        let req: Uri = "https://api.example.com/x?y".parse().unwrap();
        let uri = upstream_uri(authority(), &req).unwrap();
        assert_eq!(uri, "https://api.example.com:443/x?y");
    }

    #[test]
    fn upstream_uri_refuses_what_names_no_resource() {
        let star: Uri = "*".parse().unwrap();
        assert!(upstream_uri(authority(), &star).is_none());
        let req: Uri = "/a".parse().unwrap();
        assert!(upstream_uri(None, &req).is_none());
    }
}
