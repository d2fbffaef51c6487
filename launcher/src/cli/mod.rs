//! The subcommands. Library code does the work; this layer prints and asks.

pub mod manage;
pub mod start;

/// Exit status when the launcher itself fails (as `docker run` does), so it is not confused with
/// the exit status of a `-- CMD` it ran.
pub const EXIT_LAUNCHER_FAILED: u8 = 125;
/// Exit status after any signal that ends a bottle (SIGINT, SIGTERM, SIGHUP, SIGQUIT): 128 + SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;
