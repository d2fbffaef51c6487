//! claude-bottle CLI: `start`, `ps`, `stop`, `logs`, `doctor`.
// A CLI's job is to print: stdout carries plans, tables and audit lines, stderr the human messages.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "claude-bottle",
    version,
    about = "Run a Claude Code agent in a bottle: an internal Docker network whose only way out is an egress proxy that holds the credentials."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Uncork a bottle for AGENT and run it; everything is removed when it exits.
    Start(cli::start::StartArgs),
    /// List bottles (running or left behind).
    Ps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a bottle's containers and networks.
    Stop {
        /// Bottle id as shown by `ps`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Remove every bottle.
        #[arg(long)]
        all: bool,
    },
    /// Print a bottle's audit stream (the sidecar's stdout: one JSON line per proxy decision).
    Logs {
        name: String,
        /// Keep printing as new decisions happen.
        #[arg(short, long)]
        follow: bool,
    },
    /// Check Docker, runtimes (gVisor), images and the proxy binary.
    Doctor,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claude-bottle: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_LAUNCHER_FAILED);
        }
    };
    let code = runtime.block_on(async {
        let result = match cli.command {
            Command::Start(args) => cli::start::run(args).await,
            Command::Ps { json } => cli::manage::ps(json).await,
            Command::Stop { name, all } => cli::manage::stop(name.filter(|_| !all)).await,
            Command::Logs { name, follow } => cli::manage::logs(&name, follow).await,
            Command::Doctor => cli::manage::doctor().await,
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("claude-bottle: {e:#}");
                cli::EXIT_LAUNCHER_FAILED
            }
        }
    });
    // Don't wait for a blocked stdin reader thread: everything that matters is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}
