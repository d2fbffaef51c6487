//! The `[clients]` check at the front door: a peer the config does not admit is closed right
//! after `accept`, before a byte of its request is read, and leaves one audit line.
//!
//! Why before reading: nothing a refused peer sends can reach the HTTP parser, DLP or a route,
//! so the check does not depend on any of them being right.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::audit::{Decision, Event, Kind};
use crate::state::Proxy;

/// The stream back if `peer` may use this listener. Otherwise `stream` is closed unread and the
/// refusal is audited: kind `connect`, decision `deny`, status 0 (no HTTP answer), `host`/`port` the
/// listener's own address (which listener was tried), the reason naming the peer and the key.
pub(super) fn admit(
    proxy: &Proxy,
    conn: u64,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TcpStream> {
    let Err(refusal) = proxy.clients.check(peer.ip()) else {
        return Some(stream);
    };
    let local = stream.local_addr().ok();
    drop(stream);
    let mut event = Event::begin(conn, Kind::Connect, Some(peer));
    if let Some(local) = local {
        event.host = local.ip().to_string();
        event.port = local.port();
    }
    event.outcome(Decision::Deny, 0, refusal.to_string());
    proxy.metrics.decision("deny", "client");
    proxy.audit.emit(event);
    None
}
