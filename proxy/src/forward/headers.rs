//! Hop-by-hop header handling (RFC 9110 §7.6.1): connection-scoped headers never cross the
//! proxy, in either direction, and never reach an HTTP/2 peer (where they are illegal).

use http::header::{HeaderMap, HeaderName, CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};

const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_AUTHORIZATION: HeaderName = HeaderName::from_static("proxy-authorization");
const PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");

/// The hop-by-hop headers that are always removed (besides those `Connection` names).
fn is_hop(name: &HeaderName, keep_upgrade: bool) -> bool {
    *name == TE
        || *name == TRAILER
        || *name == TRANSFER_ENCODING
        || *name == PROXY_CONNECTION
        || *name == KEEP_ALIVE
        || *name == PROXY_AUTHORIZATION
        || *name == PROXY_AUTHENTICATE
        || (!keep_upgrade && (*name == CONNECTION || *name == UPGRADE))
}

/// Removes hop-by-hop headers, including any named in `Connection`. With `keep_upgrade` the
/// `Connection: upgrade` / `Upgrade` pair survives (WebSocket handshakes).
///
/// Runs twice per request, so it scans the map once and removes only what is present (most
/// messages carry none of these) instead of looking each candidate up by name.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut remove: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && *n == UPGRADE))
        .collect();
    for name in headers.keys() {
        if is_hop(name, keep_upgrade) {
            remove.push(name.clone());
        }
    }
    for name in remove {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, http::HeaderValue::from_static("upgrade"));
    }
}

/// True when the request asks for a WebSocket upgrade (HTTP/1.1 style).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips_listed_and_standard_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn websocket_upgrade_survives_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_websocket_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert!(is_websocket_upgrade(&h));
    }
}
