//! Every bound the proxy enforces, in one place, so a reviewer can see the whole resource
//! envelope at a glance and tests can refer to the same numbers.

use std::time::Duration;

/// Largest request head (request line + headers) accepted from a client. hyper answers 431
/// beyond it; a head larger than this is never a legitimate agent request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most header fields in one request head; more is answered with 431. This is hyper's default
/// and must stay so (see `accept::http1::builder`).
pub const MAX_HEADERS: usize = 100;

/// Time a client has to send a complete request head on a fresh or idle keep-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a client has to send its ClientHello after the CONNECT was answered.
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest ClientHello we wait for before giving up on the tunnel (post-quantum key shares make
/// them a few KiB; 64 KiB is far beyond any real one).
pub const MAX_CLIENT_HELLO_BYTES: usize = 64 * 1024;

/// Time to finish the TLS handshake with the agent, once the ClientHello has arrived.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time for hyper to hand over an upgraded connection (CONNECT's 200 or a WebSocket 101
/// written to a client that may not be reading).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time to establish a TCP connection (and TLS) to an upstream.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time for all of an upstream's approved addresses together (tried in order).
pub const UPSTREAM_DIAL_BUDGET: Duration = Duration::from_secs(30);

/// Time to wait for an upstream's response head once the request is sent.
pub const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// Idle time after which pooled upstream connections and passthrough/WebSocket tunnels close.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Pooled idle upstream connections kept per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// Concurrent client connections; further accepts wait for a slot (backpressure on the
/// listener rather than unbounded tasks).
pub const MAX_CONNECTIONS: usize = 4096;

/// Concurrent connections on the admin listener (`/healthz`, `/metrics`).
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// How long a graceful shutdown waits for in-flight connections before dropping them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// During a drain, an opaque stream (passthrough tunnel, WebSocket) that has moved no byte for
/// this long is closed: it has nothing in flight that a close would cut.
pub const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// Findings kept per judged piece (a head, a body round, trailers) for the audit line; all of
/// them are still judged.
pub const MAX_AUDITED_FINDINGS: usize = 64;

/// Bytes buffered per direction when splicing passthrough and WebSocket tunnels.
pub const SPLICE_BUFFER: usize = 16 * 1024;

/// Most request-body bytes held back while DLP clears them. The scanner's own window keeps this
/// far lower for plain bodies; the bound matters for compressed bodies whose decoded output
/// lags. Past it the request is refused: never forwarded unscanned.
pub const MAX_HELD_BODY_BYTES: usize = 8 << 20;

/// Longest wait for the next piece of a request body while the proxy is ready to take it (a
/// stalled upload is cut; time the upstream spends applying backpressure does not count).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest silence inside an upstream's response body while the client waits for more (a
/// stalled upstream must not hold the client connection and its slot forever). Generous: LLM
/// streams send keep-alive events far more often, and long-polls answer within it.
pub const RESPONSE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// HTTP/2 client connections: ping interval, and how long a ping may go unanswered before the
/// connection is considered dead.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// An HTTP/2 client connection in a bumped tunnel with no stream in flight for this long is
/// sent GOAWAY and closed. Answered pings do not count as use; HTTP/1's counterpart is
/// `HEADER_READ_TIMEOUT`. Long enough for an agent's pauses between LLM calls to reuse it.
pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
