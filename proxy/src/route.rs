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
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;

use crate::accept::framing::{Guarded, Poison};
use crate::accept::{ClientCx, Lease};
use crate::audit::{Event, Kind};
use crate::body;
use crate::config::{find_route, has_dot_or_empty_segment, Config, ConfigError, Route, Secrets};
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

/// A smart-HTTP push (`git-receive-pack`), in either of its two requests. Compared after
/// percent-decoding and without a trailing `/`, case-insensitively: an upstream that decodes
/// `git-receive-pac%6B` or `service=git%2Dreceive-pack` still sees a push.
fn is_push(path: &str, query: Option<&str>) -> bool {
    let path = percent_decode_str(path).decode_utf8_lossy();
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    path.ends_with("/git-receive-pack")
        || (path.ends_with("/info/refs")
            && query.is_some_and(|q| {
                q.split('&').any(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let k = percent_decode_str(k).decode_utf8_lossy();
                    let v = percent_decode_str(v).decode_utf8_lossy();
                    k.eq_ignore_ascii_case("service") && v.eq_ignore_ascii_case("git-receive-pack")
                })
            }))
}

/// A credential route forwards the rest of the path under the route's base path with a token
/// attached, so the path must mean what it says: no `.`/`..` segments (`/gh/../../user` leaves
/// the base path at an upstream that resolves them), no encoded `.`, `/` or `\`, no backslash,
/// no empty segment. Agents' API clients never send these; refusing is simpler than guessing
/// how each upstream normalises.
fn ambiguous_path(path: &str) -> Option<&'static str> {
    if has_dot_or_empty_segment(path) {
        return Some("an empty, '.' or '..' path segment");
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) || path.contains('\\') {
        return Some("an encoded '.', '/' or a backslash in the path");
    }
    // Servlet containers (Tomcat, Jetty: Bitbucket, Gerrit) drop `;params` from a segment
    // before routing, so `git-receive-pack;x` is a push and `..;` is a `..` there.
    if path.contains(';') || lower.contains("%3b") {
        return Some("a ';' (path parameter) in the path");
    }
    None
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
    // With upgrades: a WebSocket API behind a route (OpenAI's realtime API) is relayed, its
    // messages scanned, like one inside a bumped tunnel.
    let conn = crate::accept::http1::builder()
        .serve_connection(io, svc)
        .with_upgrades();
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
    if !crate::policy::method::is_listed(req.method().as_str()) {
        let why = crate::policy::method::refusal(req.method().as_str());
        return proxy.refuse(event, StatusCode::NOT_IMPLEMENTED, "protocol", why);
    }
    if let Some(why) = ambiguous_path(req.uri().path()) {
        return proxy.refuse(
            event,
            StatusCode::BAD_REQUEST,
            "protocol",
            format!("credential routes take plain paths; this one has {why}"),
        );
    }
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
        // spellings an upstream would decode to the same push
        assert!(is_push("/gh/org/repo.git/git-receive-pac%6B", None));
        assert!(is_push("/gh/org/repo.git/git-receive-pack/", None));
        assert!(is_push("/gh/org/repo.git/GIT-RECEIVE-PACK", None));
        assert!(is_push(
            "/gh/org/repo.git/info/refs/",
            Some("x=1&service=git%2Dreceive-pack")
        ));
        assert!(is_push(
            "/gh/org/repo.git/info%2Frefs",
            Some("%73ervice=git-receive-pack")
        ));
    }

    #[test]
    fn only_plain_paths_reach_a_credential_route() {
        for bad in [
            "/gh/../../user",
            "/gh/./x",
            "/gh/%2e%2e/user",
            "/gh/a%2Fb",
            "/gh/a\\b",
            "/gh//x",
            "/gh/x/..",
        ] {
            assert!(ambiguous_path(bad).is_some(), "{bad}");
        }
        for good in [
            "/gh/repos/o/r/pulls",
            "/anthropic/v1/messages",
            "/gh/a.b/c..d/%20x",
        ] {
            assert_eq!(ambiguous_path(good), None, "{good}");
        }
    }
}
