//! claude-bottle launcher.
