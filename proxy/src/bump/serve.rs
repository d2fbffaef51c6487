//! Terminates the agent's TLS with a cached per-host `ServerConfig` and serves HTTP/1.1 or
//! HTTP/2 — whichever ALPN chose — so every request inside the tunnel goes through `request`.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::accept::framing::{Guarded, Poison};
use crate::accept::{ClientCx, Lease};
use crate::audit::{Decision, Event, Kind};
use crate::bump::idle::Streams;
use crate::limits::{
    H2_IDLE_TIMEOUT, H2_KEEPALIVE_INTERVAL, H2_KEEPALIVE_TIMEOUT, MAX_HEADER_BYTES,
    TLS_HANDSHAKE_TIMEOUT,
};
use crate::policy::Target;
use crate::request::{handle_bumped, TunnelCx};
use crate::state::Proxy;

pub async fn intercept<IO>(io: IO, target: Target, cx: ClientCx, proxy: Arc<Proxy>, lease: Lease)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = target.host_string();
    let config = match proxy.certs.get(&host).await {
        Ok(c) => c,
        Err(e) => return fail(&proxy, cx, &target, format!("leaf issuance failed: {e}")),
    };
    let accept = TlsAcceptor::from(config).accept(io);
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
        Err(_) => return fail(&proxy, cx, &target, "TLS handshake timed out".into()),
        Ok(Err(e)) => return fail(&proxy, cx, &target, format!("TLS handshake failed: {e}")),
        Ok(Ok(tls)) => tls,
    };
    let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let tunnel = Arc::new(TunnelCx::new(cx, target, lease.clone()));
    let poison = Poison::default();
    let poison_reader = poison.clone();
    let streams = Streams::default();
    let counted = streams.clone();
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(poison.clone());
        let proxy = Arc::clone(&proxy);
        let tunnel = Arc::clone(&tunnel);
        let stream = is_h2.then(|| counted.open());
        async move {
            let resp = handle_bumped(req, tunnel, proxy).await;
            Ok::<_, Infallible>(match stream {
                Some(stream) => resp.map(|body| stream.hold_until_end_of(body)),
                None => resp,
            })
        }
    });
    // On shutdown, HTTP/1 finishes the exchange in flight and closes; HTTP/2 sends GOAWAY and
    // finishes its open streams. An HTTP/2 connection unused for H2_IDLE_TIMEOUT closes the
    // same way.
    let result = if is_h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
            .serve_connection(TokioIo::new(tls), svc);
        tokio::pin!(conn);
        tokio::select! {
            out = conn.as_mut() => out,
            () = lease.shutdown().cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            () = streams.idle_for(H2_IDLE_TIMEOUT) => {
                tracing::debug!(conn = cx.conn, "idle HTTP/2 connection closed");
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let io = TokioIo::new(Guarded::new(tls, poison_reader));
        let conn = crate::accept::http1::builder()
            .serve_connection(io, svc)
            .with_upgrades();
        tokio::pin!(conn);
        crate::accept::serve_until_shutdown!(lease, conn)
    };
    if let Err(e) = result {
        tracing::debug!(conn = cx.conn, error = %e, "bumped connection ended");
    }
}

fn fail(proxy: &Proxy, cx: ClientCx, target: &Target, reason: String) {
    let mut event = Event::begin(cx.conn, Kind::Tunnel, Some(cx.peer)).target(
        "TLS",
        &target.host_string(),
        target.port,
        "",
    );
    event.outcome(Decision::Error, 0, reason);
    proxy.metrics.decision("error", "tls");
    proxy.audit.emit(event);
}
