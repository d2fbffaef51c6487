//! The admin listener: `GET /healthz` and `GET /metrics`. Kept apart from the proxy listener so
//! an agent can be denied access to it by address alone.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body;
use crate::forward::ProxyBody;
use crate::limits::MAX_ADMIN_CONNECTIONS;
use crate::metrics::CertCacheFigures;
use crate::state::Proxy;

pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: CancellationToken) {
    // Scrapers and health checks need a handful; anything on the host can connect, so the
    // count is bounded like the proxy listener's (further accepts wait in the kernel's queue).
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(answer(&req, &proxy).await) }
            });
            let _ = crate::accept::http1::builder()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(req: &Request<Incoming>, proxy: &Proxy) -> Response<ProxyBody> {
    if req.method() != Method::GET {
        return body::response(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => body::response(StatusCode::OK, "ok\n"),
        "/metrics" => {
            // moka counts entries lazily; settle its pending inserts and evictions so the size
            // gauge is exact (cheap, and only when scraped).
            proxy.certs.run_pending_tasks().await;
            let s = proxy.certs.stats();
            let figures = CertCacheFigures {
                hits: s.hits,
                misses: s.misses,
                size: s.size,
            };
            let mut text = proxy.metrics.render(figures);
            proxy.shards.render(&mut text);
            let mut resp = body::response(StatusCode::OK, text);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        _ => body::response(StatusCode::NOT_FOUND, "try /healthz or /metrics\n"),
    }
}
