//! Passthrough hosts: allowed, SNI-checked, but not intercepted (certificate-pinned clients).
//! The bytes are spliced to exactly the addresses the SSRF guard approved.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::accept::{ClientCx, Lease};
use crate::audit::{Decision, Event, Kind};
use crate::forward::connector::dial_first;
use crate::policy::Target;
use crate::state::Proxy;

pub async fn splice<IO>(
    io: IO,
    target: &Target,
    addrs: &[SocketAddr],
    cx: ClientCx,
    proxy: &Proxy,
    lease: &Lease,
) where
    IO: AsyncRead + AsyncWrite + Send,
{
    let mut event = Event::begin(cx.conn, Kind::Tunnel, Some(cx.peer)).target(
        "TLS",
        &target.host_string(),
        target.port,
        "",
    );
    match dial_first(addrs).await {
        Err(e) => {
            event.outcome(Decision::Error, 0, format!("passthrough: {e}"));
            proxy.metrics.decision("error", "upstream");
        }
        Ok(upstream) => {
            let moved = super::splice::splice(io, upstream, lease.shutdown()).await;
            event.bytes_up = moved.up;
            event.bytes_down = moved.down;
            proxy.metrics.add_bytes(moved.up, moved.down);
            event.outcome(Decision::Allow, 0, "passthrough");
        }
    }
    proxy.audit.emit(event);
}
