//! claude-bottle CLI.
fn main() {}
