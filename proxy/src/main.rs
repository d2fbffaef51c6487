//! egress-proxy CLI.
fn main() {}
