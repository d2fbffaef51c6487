//! claude-bottle launcher: reads bottle and agent manifests, turns them into a plan, and runs the
//! plan as a Docker topology (agent on an internal network, egress-proxy sidecar as its only way out).

pub mod docker;
pub mod manifest;
pub mod plan;
