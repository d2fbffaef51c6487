//! Which request methods the proxy forwards. A method is any HTTP token, and neither hyper nor
//! the upstream bounds what one may spell: `ghp_<token> /x HTTP/1.1` is a well-formed request
//! line. A method is not a scanned surface (it carries no data in any real protocol), so rather
//! than scan it the proxy forwards only the registered methods an agent's tools use, refuses
//! the rest with 501, and never writes an unlisted one into the audit.

/// RFC 9110 methods, PATCH, QUERY, and the WebDAV/CalDAV/DeltaV methods (IANA registry) that
/// file-sync and version-control clients send. Not TRACE: a server answering it echoes the
/// request, credentials the proxy injected included, back to the agent (RFC 9110 9.3.8 forbids
/// sending stored credentials in one), and no tool an agent uses needs it.
const LISTED: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "PATCH",
    "QUERY",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "MKCALENDAR",
    "MKACTIVITY",
    "CHECKOUT",
    "MERGE",
];

/// What the audit records for a method that is not listed.
pub const UNLISTED: &str = "[unlisted method]";

pub fn is_listed(method: &str) -> bool {
    LISTED.contains(&method)
}

/// The method as the audit may record it.
pub fn for_audit(method: &str) -> &str {
    if is_listed(method) {
        method
    } else {
        UNLISTED
    }
}

/// The refusal text for an unlisted method (names its length, never its bytes).
pub fn refusal(method: &str) -> String {
    format!(
        "request method not forwarded: an unlisted method ({} bytes); only registered HTTP methods (GET, POST, PUT, PATCH, DELETE, WebDAV ...) leave the bottle",
        method.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_methods_pass_and_tokens_shaped_like_secrets_do_not() {
        for m in ["GET", "POST", "PROPFIND", "PATCH"] {
            assert!(is_listed(m));
            assert_eq!(for_audit(m), m);
        }
        for m in [
            "ghp_R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa0QoI",
            "get",
            "BREW",
            "",
        ] {
            assert!(!is_listed(m), "{m}");
            assert_eq!(for_audit(m), UNLISTED);
        }
        let token = "ghp_R8dJq2Lw9ZkT4mXc7VbN1sYh3UeGf6Pa0QoI";
        assert!(!refusal(token).contains("ghp_"));
        {}
    }
}
