//! `claude-bottle start AGENT [--dry-run] [--yes] [-- CMD...]`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};

use launcher::docker::{self, images, run, topology};
use launcher::manifest::catalog::{home_dir, Catalog};
use launcher::plan::{self, Options, Plan};

use super::{EXIT_INTERRUPTED, EXIT_LAUNCHER_FAILED};

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Agent name (~/.claude-bottle/agents/NAME.md or <repo>/.claude-bottle/agents/NAME.md).
    pub agent: String,
    /// Print the plan as JSON and start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Don't ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Agent image to run instead of claude-bottle/agent:latest.
    #[arg(long, value_name = "IMG")]
    pub agent_image: Option<String>,
    /// Extra label KEY=VALUE on every container and network (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Use this existing network as the sidecar's way out instead of creating one.
    #[arg(long, value_name = "NETWORK")]
    pub egress_network: Option<String>,
    /// Pin HOST to IP in the proxy (operator-trusted; exempt from the private-address guard).
    #[arg(long = "upstream-host", value_name = "HOST=IP", value_parser = host_ip)]
    pub upstream_hosts: Vec<(String, String)>,
    /// Extra PEM root the proxy trusts for upstream TLS (repeatable).
    #[arg(long = "upstream-ca", value_name = "PEM")]
    pub upstream_cas: Vec<PathBuf>,
    /// Run this instead of `claude` (non-interactive; its exit status becomes ours).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    if k.is_empty() || k.starts_with("claude-bottle.") {
        return Err("label keys must be non-empty and outside the claude-bottle. namespace".into());
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn host_ip(s: &str) -> Result<(String, String), String> {
    let (host, ip) = s.split_once('=').ok_or("expected HOST=IP")?;
    launcher::manifest::rules::extra_host(host, ip)
}

fn options(args: &StartArgs, home: &std::path::Path) -> Options {
    Options {
        skills_root: Some(home.join("skills")),
        agent_image: args.agent_image.clone(),
        command: (!args.command.is_empty()).then(|| args.command.clone()),
        labels: args.labels.clone(),
        egress_network: args.egress_network.clone(),
        upstream_hosts: args.upstream_hosts.clone(),
        upstream_cas: args.upstream_cas.clone(),
    }
}

/// What `prepare` leaves to do: nothing more (dry run, not confirmed), or a launch.
enum Prepared {
    Done(u8),
    Launch(Box<Ready>),
}

/// Everything a launch needs, checked and confirmed; nothing is created yet.
struct Ready {
    docker: bollard::Docker,
    plan: Plan,
    runtime: Option<String>,
    tokens: Vec<(String, secrecy::SecretString)>,
}

pub async fn run(args: StartArgs) -> Result<u8> {
    // First, before any work: from here on SIGINT/SIGTERM/SIGHUP/SIGQUIT are caught and lead to
    // an orderly exit (with teardown once something exists), never to the default kill that
    // would leave a half-made bottle behind.
    let mut signals = Signals::register().context("installing the signal handlers")?;
    let prepared = tokio::select! {
        prepared = prepare(&args) => prepared?,
        () = signals.recv() => {
            eprintln!("claude-bottle: interrupted; nothing was started");
            return Ok(EXIT_INTERRUPTED);
        }
    };
    let ready = match prepared {
        Prepared::Done(code) => return Ok(code),
        Prepared::Launch(ready) => *ready,
    };
    let Ready {
        docker,
        plan,
        runtime,
        tokens,
    } = ready;
    let mut created = topology::Created::new(docker.clone());
    let outcome = tokio::select! {
        result = launch_and_run(&docker, &plan, runtime.as_deref(), &tokens, &mut created) => Some(result),
        () = signals.recv() => None,
    };
    drop(tokens);
    let failures = created.teardown().await;
    for failure in &failures {
        eprintln!("claude-bottle: cleanup failed for {failure}");
    }
    match outcome {
        None => {
            eprintln!("claude-bottle: interrupted; bottle {} removed", plan.id);
            Ok(EXIT_INTERRUPTED)
        }
        Some(Ok(code)) => Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(EXIT_LAUNCHER_FAILED)),
        Some(Err(e)) => Err(e.into()),
    }
}

/// Resolves the agent, builds the plan, reads the tokens, asks, and gets Docker and the images
/// ready. Creates no bottle resource (an imported image is a cache, kept across bottles), so a
/// signal may drop it at any point.
async fn prepare(args: &StartArgs) -> Result<Prepared> {
    let home = home_dir()?;
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let catalog = Catalog::discover(&home, &cwd);
    for warning in &catalog.warnings {
        eprintln!("claude-bottle: warning: {warning}");
    }
    let resolved = catalog.resolve(&args.agent)?;
    for path in &args.upstream_cas {
        anyhow::ensure!(
            path.is_file(),
            "--upstream-ca {}: not a file",
            path.display()
        );
    }
    let proxy = images::find_proxy_binary();
    let sidecar = match &proxy {
        Ok(path) => images::sidecar_tag(path)?,
        Err(_) => format!("{}:<proxy binary not found>", images::SIDECAR_REPO),
    };
    let id = plan::new_id(&resolved.agent.name);
    let mut plan = plan::build(&resolved, &id, &sidecar, &options(args, &home));
    if args.dry_run {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(Prepared::Done(0));
    }
    let proxy = proxy?;
    for (name, dir) in &plan.skill_dirs {
        anyhow::ensure!(
            dir.is_dir(),
            "agent skill `{name}` not found: expected the directory {}",
            dir.display()
        );
    }
    let tokens = topology::read_tokens(&plan)?;
    eprint!("{}", preflight(&plan));
    // On a blocking thread, so a signal while the question waits for its answer is still seen.
    let yes = args.yes;
    if !tokio::task::spawn_blocking(move || confirmed(yes)).await?? {
        eprintln!("claude-bottle: not started");
        return Ok(Prepared::Done(1));
    }
    let docker = docker::connect().await?;
    let runtime = docker::pick_runtime(&docker).await;
    plan.runtime = runtime.clone().unwrap_or_else(|| "default".to_owned());
    plan.images.sidecar = images::ensure_sidecar_image(&docker, &proxy).await?;
    if docker.inspect_image(&plan.images.agent).await.is_err() {
        anyhow::bail!(
            "agent image {} is not present; build it from images/agent/Dockerfile (docs/LAUNCHER.md) or pass --agent-image",
            plan.images.agent
        );
    }
    Ok(Prepared::Launch(Box::new(Ready {
        docker,
        plan,
        runtime,
        tokens,
    })))
}

async fn launch_and_run(
    docker: &bollard::Docker,
    plan: &Plan,
    runtime: Option<&str>,
    tokens: &[(String, secrecy::SecretString)],
    created: &mut topology::Created,
) -> Result<i64, launcher::docker::DockerError> {
    let agent = topology::launch(docker, plan, runtime, tokens, created).await?;
    let interactive = plan.interactive;
    run::run_agent(docker, &agent, interactive).await
}

/// The signals that end a bottle (Ctrl-C, `kill`, a closed terminal, Ctrl-\), each handled
/// the same way: teardown, then exit status 130.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    quit: Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The next of them to arrive.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
            _ = self.hup.recv() => {},
            _ = self.quit.recv() => {},
        }
    }
}

fn preflight(plan: &Plan) -> String {
    let mut s = format!(
        "claude-bottle: agent `{}` in bottle `{}` (id {})\n  image: {}\n  egress allowlist:\n",
        plan.agent, plan.bottle, plan.id, plan.images.agent
    );
    for host in &plan.allowlist {
        s.push_str(&format!("    {host}\n"));
    }
    if plan.routes.is_empty() {
        s.push_str("  credential routes: none\n");
    } else {
        s.push_str("  credential routes (token stays in the proxy):\n");
        for r in &plan.routes {
            s.push_str(&format!(
                "    {} -> {} ({} from ${})\n",
                r.path, r.upstream, r.auth_scheme, r.token_ref
            ));
        }
    }
    if !plan.git.is_empty() {
        s.push_str("  git remotes:\n");
        for g in &plan.git {
            s.push_str(&format!("    {} -> {}\n", g.name, g.upstream));
        }
    }
    s.push_str(&format!(
        "  command: {}\n",
        if plan.interactive {
            "claude (interactive)"
        } else {
            "custom (non-interactive)"
        }
    ));
    s
}

/// `--yes`, or a `y` typed on a terminal. Without a terminal the answer is No.
fn confirmed(yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        eprintln!("claude-bottle: no terminal to confirm on; pass --yes to start without asking");
        return Ok(false);
    }
    eprint!("Start this bottle? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
