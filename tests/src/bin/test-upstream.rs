//! The test upstream as a standalone program, for places a Rust test cannot
//! host it in-process: e.g. a container on the egress side of a bottle.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use testkit::{Upstream, UpstreamOptions};

/// Serve the testkit upstream routes (/echo, /status/N, /sse, /upload,
/// /download, /ws, /git/...) until killed.
#[derive(Parser, Debug)]
#[command(name = "test-upstream")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:443")]
    listen: SocketAddr,
    /// PEM certificate chain (required unless --plain).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// PEM private key (required unless --plain).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Serve plain HTTP instead of TLS.
    #[arg(long)]
    plain: bool,
    /// Offer only http/1.1 in ALPN.
    #[arg(long)]
    h1_only: bool,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Serve this GIT_PROJECT_ROOT under /git/ (needs git-http-backend).
    #[arg(long)]
    git_root: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut opts = UpstreamOptions::plain().listen(args.listen);
    if !args.plain {
        let (Some(cert), Some(key)) = (args.cert, args.key) else {
            bail!("--cert and --key are required unless --plain");
        };
        opts = UpstreamOptions::tls(cert, key).listen(args.listen);
    }
    if args.h1_only {
        opts = opts.h1_only();
    }
    opts.record_file = args.record;
    opts.git_root = args.git_root;
    let upstream = Upstream::start(opts)?;
    // A parseable line so a launcher knows the bound port.
    let ready = serde_json::json!({ "message": "ready", "listen": upstream.addr.to_string() });
    writeln!(std::io::stderr().lock(), "{ready}")?;
    upstream.run_forever()
}
