//! TLS bumping: terminate the agent's TLS with a leaf minted by our per-bottle CA, so the
//! requests inside the tunnel can be inspected.

pub mod client_hello;
