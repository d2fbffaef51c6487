//! egress-proxy: the only way out of a bottle.
//!
//! The module tree follows the data path of a request:
//! `accept` (listener, limits) → `policy` (allowlist, SSRF, routes) → `bump` (TLS interception) →
//! `request` → `inspect` (DLP on URL, headers, body) → `forward` (pooled, verified upstream
//! client), with `audit` and `metrics` observing every decision. `server` wires them together.

pub mod config;
pub mod policy;

pub mod accept;
pub mod bump;
pub mod forward;
pub mod inject;
pub mod inspect;
pub mod request;
pub mod route;

pub mod admin;
pub mod audit;
pub mod body;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod shard;
pub mod state;
