//! CONNECT: the policy decision is made here, before the client hears anything. Only an
//! allowed, SSRF-checked target gets `200`; everything else gets a 403 that says how to
//! allow it — never a `200` followed by a close.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::{ClientCx, Lease};
use crate::audit::{Decision, Event, Kind};
use crate::body;
use crate::forward::ProxyBody;
use crate::limits::UPGRADE_TIMEOUT;
use crate::state::Proxy;

pub async fn handle(
    mut req: Request<Incoming>,
    cx: ClientCx,
    proxy: Arc<Proxy>,
    lease: Lease,
) -> Response<ProxyBody> {
    let Some(authority) = req.uri().authority().cloned() else {
        return body::response(
            StatusCode::BAD_REQUEST,
            "egress-proxy: CONNECT needs host:port\n",
        );
    };
    let Some(port) = authority.port_u16() else {
        return body::response(
            StatusCode::BAD_REQUEST,
            "egress-proxy: CONNECT needs host:port\n",
        );
    };
    let host = authority.host();
    let mut event =
        Event::begin(cx.conn, Kind::Connect, Some(cx.peer)).target("CONNECT", host, port, "");

    let target = match proxy.policy.check(host, port) {
        Ok(t) => t,
        Err(denial) => return proxy.deny(event, &denial),
    };
    event.host = target.host_string();
    let addrs = match proxy.resolver.resolve_checked(&target).await {
        Ok(a) => a,
        Err(denial) => return proxy.deny(event, &denial),
    };

    event.outcome(Decision::Allow, 200, target.mode.as_str());
    proxy.metrics.decision("allow", "connect");
    proxy.audit.emit(event);

    let upgrade = hyper::upgrade::on(&mut req);
    let tunnel_proxy = Arc::clone(&proxy);
    // The tunnel outlives this HTTP/1 connection's task (hyper ends it on upgrade); its own
    // lease clone keeps the connection counted and drained until the tunnel closes.
    let tunnel_lease = lease.clone();
    lease.spawn(async move {
        match tokio::time::timeout(UPGRADE_TIMEOUT, upgrade).await {
            Ok(Ok(upgraded)) => {
                let io = TokioIo::new(upgraded);
                crate::bump::tunnel(io, target, addrs, cx, tunnel_proxy, tunnel_lease).await;
            }
            Ok(Err(e)) => tracing::debug!(conn = cx.conn, error = %e, "CONNECT upgrade failed"),
            Err(_) => tracing::debug!(conn = cx.conn, "CONNECT upgrade timed out"),
        }
    });
    body::empty_response(StatusCode::OK)
}
