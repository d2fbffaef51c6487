//! One request through the pipeline: authority checks → inspect → forward → stream back,
//! with one audit line written when the response body ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::header::{CONNECTION, HOST};
use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::accept::framing::Poison;
use crate::accept::{ClientCx, Lease};
use crate::audit::{Decision, Event, Kind};
use crate::body::{self, Counted, Idle};
use crate::forward::headers::{is_websocket_upgrade, strip_hop_by_hop};
use crate::forward::ProxyBody;
use crate::inspect;
use crate::inspect::body::{ScanBody, SharedVerdict};
use crate::inspect::websocket;
use crate::limits::{BODY_IDLE_TIMEOUT, RESPONSE_IDLE_TIMEOUT, UPGRADE_TIMEOUT};
use crate::policy::{method, Target};
use crate::state::Proxy;
use authority::{
    authority_matches, path_and_query, port_is_malformed, same_authority, upstream_uri,
};
use checks::{body_context, body_refusal, smuggling, BodyRefusal};
use outcome::{CutOnBlock, Outcome};

mod authority;
mod checks;
mod outcome;
mod reflected;

/// What a bumped tunnel was allowed for; every request inside must stay within it. The host
/// and authority are rendered once per tunnel, not per request (keep-alive tunnels carry
/// thousands of requests).
#[derive(Debug)]
pub struct TunnelCx {
    pub client: ClientCx,
    pub target: Target,
    /// `target.host_string()`, for audit events.
    host: String,
    /// `target.authority()` as the upstream URI's authority; `None` if it does not parse
    /// (every request is then refused as unparseable).
    authority: Option<Authority>,
    /// The client connection's lease, for the WebSocket relays its requests start.
    lease: Lease,
}

impl TunnelCx {
    pub fn new(client: ClientCx, target: Target, lease: Lease) -> Self {
        TunnelCx {
            client,
            host: target.host_string(),
            authority: Authority::try_from(target.authority()).ok(),
            target,
            lease,
        }
    }
}

/// A request that arrived inside a bumped TLS tunnel.
pub async fn handle_bumped(
    req: Request<Incoming>,
    tunnel: Arc<TunnelCx>,
    proxy: Arc<Proxy>,
) -> Response<ProxyBody> {
    let t = &tunnel.target;
    let event = Event::begin(tunnel.client.conn, Kind::Request, Some(tunnel.client.peer)).target(
        req.method().as_str(),
        &tunnel.host,
        t.port,
        req.uri().path_and_query().map_or("/", |p| p.as_str()),
    );
    if !method::is_listed(req.method().as_str()) {
        let why = method::refusal(req.method().as_str());
        return proxy.refuse(event, StatusCode::NOT_IMPLEMENTED, "protocol", why);
    }
    // Domain fronting: the tunnel was allowed for one host; a Host/:authority naming another
    // would smuggle a request to it past the CONNECT decision.
    if let Err(why) = authority_matches(&req, t, &proxy) {
        return proxy.refuse(event, StatusCode::MISDIRECTED_REQUEST, "fronting", why);
    }
    let Some(uri) = upstream_uri(tunnel.authority.clone(), req.uri()) else {
        return proxy.refuse(
            event,
            StatusCode::BAD_REQUEST,
            "protocol",
            "unparseable request target".into(),
        );
    };
    let inject = proxy.injector.for_target(t);
    exchange(req, uri, t, event, proxy, inject, &tunnel.lease).await
}

/// An absolute-form plain-HTTP request (`GET http://host/path`).
pub async fn handle_plain(
    req: Request<Incoming>,
    cx: ClientCx,
    proxy: Arc<Proxy>,
    lease: &Lease,
) -> Response<ProxyBody> {
    let path = path_and_query(req.uri());
    let host = req.uri().host().unwrap_or_default().to_owned();
    // `http` does not validate the port's digits: `host:99999` parses with no port, which must
    // not quietly become port 80.
    let bad_port = req.uri().authority().is_some_and(port_is_malformed);
    let port = req.uri().port_u16().unwrap_or(80);
    let event = Event::begin(cx.conn, Kind::Request, Some(cx.peer)).target(
        req.method().as_str(),
        &host,
        port,
        &path,
    );
    if bad_port {
        let why = "the request URI's port is not a number from 1 to 65535".to_owned();
        return proxy.refuse(event, StatusCode::BAD_REQUEST, "protocol", why);
    }
    if !method::is_listed(req.method().as_str()) {
        let why = method::refusal(req.method().as_str());
        return proxy.refuse(event, StatusCode::NOT_IMPLEMENTED, "protocol", why);
    }
    if req.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
        return proxy.refuse(
            event,
            StatusCode::BAD_REQUEST,
            "protocol",
            "only http:// absolute-form requests are proxied; use CONNECT for https".into(),
        );
    }
    if let Some(h) = req.headers().get(HOST) {
        let same = req
            .uri()
            .authority()
            .is_some_and(|a| same_authority(h, a.as_str(), port, &proxy));
        if !same {
            return proxy.refuse(
                event,
                StatusCode::BAD_REQUEST,
                "fronting",
                "Host header disagrees with the request URI".into(),
            );
        }
    }
    let target = match proxy.policy.check(&host, port) {
        Ok(t) => t,
        Err(d) => return proxy.deny(event, &d),
    };
    let mut event = event;
    event.host = target.host_string();
    if let Err(d) = proxy.resolver.resolve_checked(&target).await {
        return proxy.deny(event, &d);
    }
    let Ok(uri) = format!("http://{}{}", target.authority(), path).parse::<Uri>() else {
        return proxy.refuse(
            event,
            StatusCode::BAD_REQUEST,
            "protocol",
            "unparseable request target".into(),
        );
    };
    exchange(req, uri, &target, event, proxy, None, lease).await
}

/// Rewrites the request head after inspection and before forwarding (credential injection,
/// route authorization). An `Err` refuses the request with that explanation.
pub type Prepare = Box<dyn FnOnce(&mut http::request::Parts) -> Result<(), String> + Send>;

/// Inspect → prepare → forward → stream back. `target` is what policy allowed; `uri` is the
/// absolute upstream URI; a WebSocket relay runs under the client connection's `lease`.
pub async fn exchange(
    mut req: Request<Incoming>,
    uri: Uri,
    target: &Target,
    mut event: Event,
    proxy: Arc<Proxy>,
    prepare: Option<Prepare>,
    lease: &Lease,
) -> Response<ProxyBody> {
    let poisoned = req.extensions().get::<Poison>().is_some_and(Poison::is_set);
    let why = if poisoned {
        Some("ambiguous message framing (Content-Length with Transfer-Encoding, or repeated Content-Length)")
    } else {
        smuggling(req.headers())
    };
    if let Some(why) = why {
        let mut resp = proxy.refuse(event, StatusCode::BAD_REQUEST, "smuggling", why.into());
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    let websocket = req.version() == Version::HTTP_11 && is_websocket_upgrade(req.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, incoming) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, websocket);
    parts.headers.remove(HOST);

    // Inspect what the agent sent, before anything of ours (credentials) is added.
    // The inspector for this destination: none (DLP off), the known-secrets-only view
    // (exempt hosts), or the full one.
    let inspector = proxy.inspector.for_target(target);
    // Compressed frames could be neither scanned nor checked for a credential the proxy adds.
    if websocket && (inspector.is_some() || prepare.is_some()) {
        websocket::refuse_compression(&mut parts.headers);
    }
    if let Some(inspector) = &inspector {
        let verdict = inspector.head(&parts);
        event.findings = verdict.audit_findings();
        if verdict
            .findings
            .iter()
            .any(|f| matches!(f.location, dlp_rules::Location::Url))
        {
            event.redact_path();
        }
        if let Some(f) = &verdict.blocking {
            let body = inspect::denial_body(parts.method.as_str(), target, f);
            return proxy.refuse_dlp(event, &verdict, body);
        }
    }
    // A request the proxy adds a credential to gets its response checked for it.
    let reflection = prepare
        .is_some()
        .then(|| proxy.inspector.reflection().cloned())
        .flatten();
    let credentialed = prepare.is_some();
    if let Some(prepare) = prepare {
        if let Err(why) = prepare(&mut parts) {
            return proxy.refuse(event, StatusCode::FORBIDDEN, "inject", why);
        }
    }
    if reflection.is_some() {
        reflected::ask_identity(&mut parts.headers);
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;

    let up = Arc::new(AtomicU64::new(0));
    let shared: SharedVerdict = Arc::default();
    let outcome = Outcome::new(Arc::clone(&proxy), Arc::clone(&shared), Arc::clone(&up));
    // A body that is already known to be empty (most GETs) needs no scanner.
    let scanner_of = inspector
        .as_ref()
        .filter(|_| !http_body::Body::is_end_stream(&incoming));
    let scanning = scanner_of.is_some();
    let upstream_body = if let Some(inspector) = scanner_of {
        let scanner = match body_context(&parts.headers).and_then(|ctx| {
            inspector
                .engine()
                .body_scanner(ctx)
                .map_err(|e| e.to_string())
        }) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("request body cannot be scanned: {e}");
                return proxy.refuse(event, StatusCode::FORBIDDEN, "dlp", why);
            }
        };
        let compressed = parts.headers.contains_key(http::header::CONTENT_ENCODING);
        let scanned = ScanBody::new(
            Idle::new(incoming, BODY_IDLE_TIMEOUT),
            scanner,
            Arc::clone(inspector),
            Arc::clone(&shared),
            compressed,
        );
        // The request body may outlive the response (an upstream that answers first): it
        // holds the outcome so the audit line waits for its verdict.
        let held = Arc::clone(&outcome);
        body::boxed(Counted::new(scanned, Arc::clone(&up)).on_drop(move |_| drop(held)))
    } else {
        let idle = Idle::new(incoming, BODY_IDLE_TIMEOUT);
        body::boxed(Counted::new(idle, Arc::clone(&up)))
    };
    let upstream_req = Request::from_parts(parts, upstream_body);
    // Every client, HTTP/1 or HTTP/2, reaches the upstream over whichever of h2/http/1.1 the
    // upstream picks by ALPN; only WebSocket upgrades need the HTTP/1.1 pool. Each shard keeps
    // its own pool, so an h2 upstream connection multiplexes that shard's requests on its own
    // thread, and several of them leave in one write: measured (docs/PERFORMANCE.md, run 23)
    // 6.6 % more keep-alive requests/s than one HTTP/1.1 connection per request, with less CPU
    // per request in both the proxy and the origin.
    let route = crate::forward::Route {
        http1_only: websocket,
        credentialed,
    };
    let sent = proxy.upstream().send(upstream_req, route).await;
    if let Some(refusal) = body_refusal(&shared, target, &event.method) {
        event.bytes_up = up.load(Ordering::Relaxed);
        return match refusal {
            BodyRefusal::Finding(verdict, body) => proxy.refuse_dlp(event, &verdict, body),
            BodyRefusal::Unscannable(why) => proxy.refuse(event, StatusCode::FORBIDDEN, "dlp", why),
        };
    }
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let status = e.status();
            let (decision, class) = match e {
                crate::forward::ForwardError::Denied(_) => (Decision::Deny, "ssrf"),
                _ => (Decision::Error, "upstream"),
            };
            event.outcome(decision, status.as_u16(), e.to_string());
            event.bytes_up = up.load(Ordering::Relaxed);
            proxy.metrics.decision(
                if decision == Decision::Deny {
                    "deny"
                } else {
                    "error"
                },
                class,
            );
            proxy.audit.emit(event);
            return body::response(status, format!("egress-proxy: {e}\n"));
        }
    };

    if let Some(why) = reflection
        .as_ref()
        .and_then(|r| reflected::refuse_head(r, &resp))
    {
        event.bytes_up = up.load(Ordering::Relaxed);
        event.outcome(
            Decision::Deny,
            StatusCode::BAD_GATEWAY.as_u16(),
            why.clone(),
        );
        proxy.metrics.decision("deny", "reflect");
        proxy.audit.emit(event);
        return body::response(StatusCode::BAD_GATEWAY, format!("egress-proxy: {why}\n"));
    }
    let upgraded = websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(resp.headers_mut(), upgraded);
    event.outcome(Decision::Allow, resp.status().as_u16(), "allowed");

    if let (true, Some(client_upgrade)) = (upgraded, client_upgrade) {
        proxy.metrics.decision("allow", "request");
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let proxy = Arc::clone(&proxy);
        let shutdown = lease.shutdown().clone();
        lease.spawn(async move {
            let both = async { (client_upgrade.await, upstream_upgrade.await) };
            if let Ok((Ok(c), Ok(u))) = tokio::time::timeout(UPGRADE_TIMEOUT, both).await {
                let moved = websocket::relay(
                    TokioIo::new(c),
                    TokioIo::new(u),
                    inspector,
                    reflection,
                    &proxy,
                    &mut event,
                    &shutdown,
                )
                .await;
                event.bytes_up = moved.up;
                event.bytes_down = moved.down;
                proxy.metrics.add_bytes(moved.up, moved.down);
            }
            proxy.audit.emit(event);
        });
        let (mut parts, _) = resp.into_parts();
        parts.version = Version::HTTP_11;
        return Response::from_parts(parts, body::empty());
    }

    let (mut parts, incoming) = resp.into_parts();
    parts.version = Version::HTTP_11;
    outcome.arm(event);
    let watcher = Arc::clone(&outcome);
    let incoming = Idle::new(incoming, RESPONSE_IDLE_TIMEOUT);
    let counted = Counted::new(incoming, Arc::new(AtomicU64::new(0))).on_drop(move |bytes_down| {
        outcome.set_bytes_down(bytes_down);
        drop(outcome);
    });
    let body = if scanning {
        // The request body is still being scanned while this streams: a late block cuts it.
        body::boxed(CutOnBlock::new(counted, shared))
    } else {
        body::boxed(counted)
    };
    let body = match reflection {
        Some(r) => body::boxed(reflected::Unreflected::new(body, r, watcher)),
        None => body,
    };
    Response::from_parts(parts, body)
}
