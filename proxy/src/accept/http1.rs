//! The proxy protocol on the client side: HTTP/1.1 with CONNECT and absolute-form requests.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::framing::{Guarded, Poison};
use super::{ClientCx, Lease};
use crate::body;
use crate::forward::ProxyBody;
use crate::limits::{HEADER_READ_TIMEOUT, MAX_HEADERS, MAX_HEADER_BYTES};
use crate::state::Proxy;

/// hyper's HTTP/1 server with the proxy's header bounds: oversized heads get 431 from hyper
/// itself, before any of our code sees them.
const _: () = assert!(MAX_HEADERS == 100, "MAX_HEADERS must equal hyper's default");

pub fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    // `max_headers` is left at hyper's default (== MAX_HEADERS, asserted below): setting it
    // moves header parsing from the stack to the heap on every request.
    b.max_header_size(MAX_HEADER_BYTES)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .timer(TokioTimer::new())
        .keep_alive(true);
    b
}

pub async fn serve_client(stream: TcpStream, cx: ClientCx, proxy: Arc<Proxy>, lease: Lease) {
    let poison = Poison::default();
    let stream = Guarded::new(stream, poison.clone());
    let svc_lease = lease.clone();
    let svc = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(poison.clone());
        let proxy = Arc::clone(&proxy);
        let lease = svc_lease.clone();
        async move { Ok::<_, Infallible>(route(req, cx, proxy, lease).await) }
    });
    let conn = builder()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    if let Err(e) = crate::accept::serve_until_shutdown!(lease, conn) {
        tracing::debug!(conn = cx.conn, error = %e, "client connection ended");
    }
}

async fn route(
    req: Request<Incoming>,
    cx: ClientCx,
    proxy: Arc<Proxy>,
    lease: Lease,
) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return super::connect::handle(req, cx, proxy, lease).await;
    }
    if req.uri().scheme().is_some() && req.uri().authority().is_some() {
        return crate::request::handle_plain(req, cx, proxy, &lease).await;
    }
    body::response(
        StatusCode::BAD_REQUEST,
        "egress-proxy: this is a forward proxy; send CONNECT or an absolute-form request \
         (set HTTPS_PROXY/HTTP_PROXY to this address)\n",
    )
}
