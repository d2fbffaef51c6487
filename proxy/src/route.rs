//! Credential routes: the seeds' cred-proxy contract, in process. The agent dials
//! `http://<proxy>:9099/<route>/…` with no real credential; the route prefix is stripped, the
//! agent's own credentials are removed, `Authorization: <scheme> <token>` is set — after DLP
//! has scanned what the agent sent — and the request leaves through the same pipeline as all
//! other traffic (policy, SSRF guard, pooled verified upstream, audit). Smart-HTTP pushes are
//! refused: pushes must go through the git gate, never with a route's token.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;

use crate::accept::framing::{Guarded, Poison};
use crate::accept::{ClientCx, Lease};
use crate::audit::{Event, Kind};
use crate::body;
use crate::config::{find_route, Config, ConfigError, Route, Secrets};
use crate::forward::ProxyBody;
use crate::inject::credential_header;
use crate::request::{exchange, Prepare};
use crate::state::Proxy;

/// Routes paired with their tokens. Two routes naming the same `token_env` or `token_file`
/// share one secret.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    tokens: Vec<SecretString>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.routes.iter().map(|r| r.path.as_str()).collect();
        f.debug_struct("RouteTable")
            .field("paths", &paths)
            .finish_non_exhaustive()
    }
}

impl RouteTable {
    pub fn new(cfg: &Config, secrets: &Secrets) -> Result<RouteTable, ConfigError> {
        let mut tokens = Vec::with_capacity(cfg.routes.len());
        for r in &cfg.routes {
            tokens.push(secrets.require(r.token(), "routes")?.clone());
        }
        Ok(RouteTable {
            routes: cfg.routes.clone(),
            tokens,
        })
    }

    fn listing(&self) -> String {
        let mut out = String::from("egress-proxy: no route for this path. Routes:\n");
        for r in &self.routes {
            out.push_str(&format!(
                "  {} -> https://{}\n",
                r.path,
                r.upstream.host.authority(r.upstream.port)
            ));
        }
        out
    }
}

/// A smart-HTTP push (`git-receive-pack`), in either of its two requests.
fn is_push(path: &str, query: Option<&str>) -> bool {
    path.ends_with("/git-receive-pack")
        || (path.ends_with("/info/refs")
            && query.is_some_and(|q| q.split('&').any(|p| p == "service=git-receive-pack")))
}

/// Serves one routes-listener connection (accepted by `accept::serve`, which bounds them).
pub async fn serve_connection(stream: TcpStream, cx: ClientCx, proxy: Arc<Proxy>, lease: Lease) {
    let poison = Poison::default();
    let io = TokioIo::new(Guarded::new(stream, poison.clone()));
    let svc_lease = lease.clone();
    let svc = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(poison.clone());
        let proxy = Arc::clone(&proxy);
        let lease = svc_lease.clone();
        async move { Ok::<_, Infallible>(handle(req, cx, proxy, lease).await) }
    });
    let conn = crate::accept::http1::builder().serve_connection(io, svc);
    tokio::pin!(conn);
    if let Err(e) = crate::accept::serve_until_shutdown!(lease, conn) {
        tracing::debug!(conn = cx.conn, error = %e, "route connection ended");
    }
}

async fn handle(
    req: Request<Incoming>,
    cx: ClientCx,
    proxy: Arc<Proxy>,
    lease: Lease,
) -> Response<ProxyBody> {
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let event =
        Event::begin(cx.conn, Kind::Route, Some(cx.peer)).target(req.method().as_str(), "", 0, &pq);
    if is_push(req.uri().path(), req.uri().query()) {
        return proxy.refuse(
            event,
            StatusCode::FORBIDDEN,
            "push",
            "git push is not allowed through a credential route; pushes go through the bottle's git gate \
             (configure a `git` remote in the bottle manifest)"
                .into(),
        );
    }
    let table = &proxy.routes;
    let Some((route, upstream_pq)) = find_route(&table.routes, &pq) else {
        proxy.metrics.decision("deny", "route");
        return body::response(StatusCode::NOT_FOUND, table.listing());
    };
    let index = table
        .routes
        .iter()
        .position(|r| std::ptr::eq(r, route))
        .unwrap_or(0);
    let token = table.tokens.get(index).cloned();
    let event = event.target(
        req.method().as_str(),
        &route.upstream.host.to_string(),
        route.upstream.port,
        &upstream_pq,
    );
    let target = match proxy
        .policy
        .check_host(&route.upstream.host, route.upstream.port)
    {
        Ok(t) => t,
        Err(d) => return proxy.deny(event, &d),
    };
    if let Err(d) = proxy.resolver.resolve_checked(&target).await {
        return proxy.deny(event, &d);
    }
    let Ok(uri) = format!("https://{}{}", target.authority(), upstream_pq).parse::<Uri>() else {
        return proxy.refuse(
            event,
            StatusCode::BAD_REQUEST,
            "protocol",
            "unparseable route target".into(),
        );
    };
    let scheme = route.auth_scheme.clone();
    let prepare: Prepare = Box::new(move |parts: &mut http::request::Parts| {
        // The agent's own credentials never travel on: the route's token replaces them.
        for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
            parts.headers.remove(name);
        }
        parts.headers.remove("x-api-key");
        let Some(token) = token else {
            return Err("route has no token".into());
        };
        let line = format!("{scheme} {}", token.expose_secret());
        let value = credential_header(line).ok_or("route token is not a valid header value")?;
        parts.headers.insert(AUTHORIZATION, value);
        Ok(())
    });
    exchange(req, uri, &target, event, proxy, Some(prepare), &lease).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_paths_are_recognised() {
        assert!(is_push("/gh/org/repo.git/git-receive-pack", None));
        assert!(is_push(
            "/gh/org/repo.git/info/refs",
            Some("service=git-receive-pack")
        ));
        assert!(!is_push(
            "/gh/org/repo.git/info/refs",
            Some("service=git-upload-pack")
        ));
        assert!(!is_push("/gh/org/repo.git/git-upload-pack", None));
    }
}
