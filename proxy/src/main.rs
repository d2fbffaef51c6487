//! `egress-proxy` command line. The subcommands and their flags are a public contract.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use egress_proxy::config::Config;

/// jemalloc instead of glibc malloc: every request allocates and frees many small objects
/// (headers, bodies, audit line) across worker threads; glibc malloc/free were ~17% of the
/// proxy's CPU under keep-alive load. jemalloc beat mimalloc here on both instructions per
/// request and idle RSS (see the commit that introduced it).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "egress-proxy",
    version,
    about = "TLS-bumping egress proxy with allowlist, SSRF guard and DLP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT. Without --config, runs the embedded default policy with an
    /// ephemeral CA and prints how to use it.
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen here instead of the config's `listen` (e.g. `127.0.0.1:0` for any free port;
        /// the address bound is printed).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage the per-bottle CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Validate a config and print the resolved policy.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Scan files with the DLP engine (each file as a request body; `-` is stdin; `.gz` is
    /// decompressed). Exit 0 clean, 1 findings, 2 error.
    Scan {
        /// One JSON object per finding on stdout.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Write DIR/ca.pem and DIR/ca.key (mode 0600).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = certs::DEFAULT_CA_VALIDITY.as_secs() / 86_400)]
        days: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run { config, listen } => run(config.as_deref(), listen),
        Command::Ca {
            command: CaCommand::Init { dir, days },
        } => ca_init(&dir, days),
        Command::Check { config } => check(&config),
        Command::Scan { json, paths } => scan(json, &paths),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("egress-proxy: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
}

fn ca_init(dir: &Path, days: u64) -> anyhow::Result<ExitCode> {
    let validity = std::time::Duration::from_secs(days * 24 * 3600);
    let ca = certs::CertificateAuthority::generate(validity)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = ca.write_pem(dir)?;
    println!("{}", files.cert.display());
    Ok(ExitCode::SUCCESS)
}

fn scan(json: bool, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let engine = std::sync::Arc::new(dlp_rules::Engine::builtin()?);
    let mut any = false;
    for path in paths {
        let name = path.to_string_lossy();
        let findings = if name == "-" {
            dlp_rules::scan_reader(&engine, std::io::stdin().lock(), "-")
        } else {
            let file = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
            dlp_rules::scan_reader(&engine, std::io::BufReader::new(file), &name)
        }
        .with_context(|| format!("scanning {name}"))?;
        for f in &findings {
            any = true;
            if json {
                let mut v = serde_json::to_value(f)?;
                v["path"] = serde_json::Value::String(name.to_string());
                v["rule"] = serde_json::Value::String(f.rule_id.clone());
                println!("{v}");
            } else {
                println!("{name}: {f}");
            }
        }
    }
    Ok(if any {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("egress-proxy: {}: {e}", path.display());
            return Ok(ExitCode::from(1));
        }
    };
    let policy = egress_proxy::policy::Policy::from_config(&config);
    // `[clients]` belongs to the listeners, not to the egress policy: described from the config.
    print!("{}{}", policy.describe(), config.clients.describe());
    Ok(ExitCode::SUCCESS)
}

fn run(path: Option<&Path>, listen: Option<std::net::SocketAddr>) -> anyhow::Result<ExitCode> {
    // Everything that reads the environment runs before the runtime starts its worker threads:
    // `remove_var` must not race another thread's `getenv` (the resolver's, say).
    let setup = Setup::load(path, listen)?;
    // Single-threaded: this thread is shard 0, and `server::start` starts one more shard
    // thread per further core (see egress_proxy::shard).
    let runtime = egress_proxy::shard::runtime()?;
    runtime.block_on(serve(setup))
}

/// What `run` needs before it starts serving.
struct Setup {
    config: Config,
    ca: certs::CertificateAuthority,
    secrets: egress_proxy::config::Secrets,
    /// With no config: an ephemeral CA in a temp dir (removed at exit), and its cert's path.
    ephemeral: Option<(tempfile::TempDir, PathBuf)>,
}

impl Setup {
    fn load(path: Option<&Path>, listen: Option<std::net::SocketAddr>) -> anyhow::Result<Setup> {
        let mut ephemeral = None;
        let (mut config, ca) = match path {
            Some(p) => {
                let config =
                    Config::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                let ca_cfg = config
                    .ca
                    .as_ref()
                    .context("config has no [ca] section (cert, key); create one with `egress-proxy ca init --dir DIR`")?;
                let ca = certs::CertificateAuthority::load(&ca_cfg.cert, &ca_cfg.key)?;
                (config, ca)
            }
            None => {
                let dir = tempfile::Builder::new().prefix("egress-proxy-").tempdir()?;
                let ca = certs::CertificateAuthority::generate(certs::DEFAULT_CA_VALIDITY)?;
                let files = ca.write_pem(dir.path())?;
                ephemeral = Some((dir, files.cert));
                (Config::embedded_default()?, ca)
            }
        };
        if let Some(addr) = listen {
            config.listen = addr;
        }
        let secrets = config.resolve_secrets(|name| std::env::var(name).ok())?;
        // The tokens now live only in `secrets` (wrapped, zeroized on drop); keep them out of
        // the environment any child or crash handler could see.
        for name in secrets.env_names() {
            std::env::remove_var(name);
        }
        Ok(Setup {
            config,
            ca,
            secrets,
            ephemeral,
        })
    }
}

async fn serve(setup: Setup) -> anyhow::Result<ExitCode> {
    let Setup {
        config,
        ca,
        secrets,
        ephemeral,
    } = setup;
    let running = egress_proxy::server::start(&config, ca, &secrets).await?;
    if let Some((_, cert)) = &ephemeral {
        print_embedded_banner(&config, running.listen, cert);
    }
    tracing::info!(
        listen = %running.listen,
        admin_listen = %running.admin_listen.map(|a| a.to_string()).unwrap_or_default(),
        routes_listen = %running.routes_listen.map(|a| a.to_string()).unwrap_or_default(),
        "ready"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down: draining connections");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn print_embedded_banner(config: &Config, listen: std::net::SocketAddr, cert: &Path) {
    eprintln!("egress-proxy: no --config given; running the embedded default policy.");
    eprintln!("  export HTTPS_PROXY=http://{listen}");
    eprintln!(
        "  export SSL_CERT_FILE={}   # ephemeral CA for this run",
        cert.display()
    );
    let allowed: Vec<String> = config
        .egress
        .allow
        .iter()
        .map(ToString::to_string)
        .collect();
    eprintln!("  allowed: {}", allowed.join(", "));
    eprintln!(
        "  try: curl --proxy http://{listen} --cacert {} https://api.anthropic.com/",
        cert.display()
    );
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
