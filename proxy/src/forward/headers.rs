//! Hop-by-hop header handling (RFC 9110 §7.6.1): connection-scoped headers never cross the
//! proxy, in either direction, and never reach an HTTP/2 peer (where they are illegal).

use http::header::{Entry, HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};

/// The hop-by-hop headers that are always removed (besides those `Connection` names). By the
/// lower-case name: a match on strings, instead of one `HeaderName` comparison per candidate.
fn is_hop(name: &HeaderName, keep_upgrade: bool) -> bool {
    is_hop_str(name.as_str(), keep_upgrade)
}

/// `is_hop` for a lower-case name.
fn is_hop_str(name: &str, keep_upgrade: bool) -> bool {
    match name {
        "te"
        | "trailer"
        | "transfer-encoding"
        | "proxy-connection"
        | "keep-alive"
        | "proxy-authorization"
        | "proxy-authenticate" => true,
        "connection" | "upgrade" => !keep_upgrade,
        _ => false,
    }
}

/// Removes hop-by-hop headers, including any named in `Connection`. With `keep_upgrade` the
/// `Connection: upgrade` / `Upgrade` pair survives (WebSocket handshakes).
///
/// Runs twice per request, so it allocates nothing in the common cases: `Connection` is taken
/// out whole (it is dropped, or replaced by `upgrade`, either way) and the other names it lists
/// are removed by string; then one scan of the map finds the fixed hop-by-hop names, if any.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(CONNECTION) {
        if let Entry::Occupied(e) = headers.entry(CONNECTION) {
            let mut values = e.remove_entry_mult().1;
            let first = values.next();
            // Nearly always empty (one `Connection` line): no allocation.
            let rest: Vec<HeaderValue> = values.collect();
            for v in first.iter().chain(&rest) {
                let Ok(v) = v.to_str() else { continue };
                for t in v.split(',').map(str::trim) {
                    if keep_upgrade && t.eq_ignore_ascii_case("upgrade") {
                        continue;
                    }
                    // The scan below removes the fixed names (`keep-alive`, the usual token).
                    // Names are ASCII case-insensitive; a long token is no name of ours.
                    let mut lower = [0u8; 24];
                    if let Some(l) = lower.get_mut(..t.len()) {
                        l.copy_from_slice(t.as_bytes());
                        l.make_ascii_lowercase();
                        if std::str::from_utf8(l).is_ok_and(|l| is_hop_str(l, keep_upgrade)) {
                            continue;
                        }
                    }
                    // A token that is not a valid header name removes nothing.
                    headers.remove(t);
                }
            }
        }
    }
    let hops: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop(n, keep_upgrade))
        .cloned()
        .collect();
    for name in hops {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when the request asks for a WebSocket upgrade (HTTP/1.1 style).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    // Most requests have no `Upgrade`: `Connection` is not looked up for them.
    upgrade
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{TE, TRAILER, TRANSFER_ENCODING};

    /// The previous implementation (a `HeaderName` per `Connection` token, compared by name):
    /// the allocation-free one must leave every map as it did.
    fn reference(headers: &mut HeaderMap, keep_upgrade: bool) {
        let hop = |n: &HeaderName| {
            [
                TE,
                TRAILER,
                TRANSFER_ENCODING,
                HeaderName::from_static("proxy-connection"),
                HeaderName::from_static("keep-alive"),
                HeaderName::from_static("proxy-authorization"),
                HeaderName::from_static("proxy-authenticate"),
            ]
            .contains(n)
                || (!keep_upgrade && (*n == CONNECTION || *n == UPGRADE))
        };
        let mut remove: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && *n == UPGRADE))
            .collect();
        remove.extend(headers.keys().filter(|n| hop(n)).cloned());
        for name in remove {
            headers.remove(name);
        }
        if keep_upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }

    #[test]
    fn same_result_as_the_reference() {
        let connection_values: &[&[&str]] = &[
            &[],
            &["keep-alive"],
            &["close"],
            &["Keep-Alive, X-Hop , , TE"],
            &["upgrade"],
            &["Upgrade", "x-hop"],
            &["UPGRADE,content-type"],
            &["connection"],
            &["bad name, x(y), x-hop"],
            &["x-hop", "X-Other", "keep-alive, upgrade"],
        ];
        let others: &[&[(&str, &str)]] = &[
            &[],
            &[("x-hop", "1"), ("x-other", "2"), ("x-keep", "3")],
            &[("upgrade", "websocket"), ("content-type", "text/plain")],
            &[
                ("te", "trailers"),
                ("trailer", "x"),
                ("transfer-encoding", "chunked"),
            ],
            &[
                ("proxy-connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
            ],
            &[
                ("proxy-authorization", "Basic a"),
                ("proxy-authenticate", "Basic"),
            ],
        ];
        for conn in connection_values {
            for extra in others {
                for keep_upgrade in [false, true] {
                    let mut h = HeaderMap::new();
                    for v in *conn {
                        h.append(CONNECTION, HeaderValue::from_str(v).unwrap());
                    }
                    for (n, v) in *extra {
                        h.append(*n, HeaderValue::from_static(v));
                    }
                    h.append("x-keep", HeaderValue::from_static("twice"));
                    let mut want = h.clone();
                    reference(&mut want, keep_upgrade);
                    strip_hop_by_hop(&mut h, keep_upgrade);
                    assert_eq!(h, want, "{conn:?} {extra:?} {keep_upgrade}");
                }
            }
        }
    }

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
