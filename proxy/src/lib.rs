//! egress-proxy: the only way out of a bottle.
//!
//! The module tree follows the data path of a request:
//! `accept` (listener, limits) → `policy` (allowlist, SSRF, routes) → `bump` (TLS interception) →
//! `inspect` (DLP on URL, headers, body) → `forward` (pooled, verified upstream client), with
//! `audit` and `metrics` observing every decision.

pub mod config;
pub mod policy;

pub mod bump;
