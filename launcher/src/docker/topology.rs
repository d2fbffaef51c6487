//! Creates one bottle: a fresh CA, an internal network, an egress network, the sidecar on both, and
//! the agent on the internal one only. Every name is recorded in [`Created`] before the call that
//! creates it, so a failure half-way, a signal or the agent's exit can remove exactly what exists.

use std::time::Duration;

use bollard::container::{
    Config, CreateContainerOptions, LogsOptions, NetworkingConfig, UploadToContainerOptions,
};
use bollard::models::{EndpointSettings, HostConfig};
use bollard::network::ConnectNetworkOptions;
use bollard::Docker;
use futures_util::StreamExt;
use secrecy::SecretString;

pub use super::created::Created;
use super::images::PROXY_IN_IMAGE;
use super::network::{self, create_network};
use super::rootfs::Rootfs;
pub use super::secrets::read_tokens;
use super::{label_map, secrets, DockerError};
use crate::plan::{self, Plan, AGENT_HOME, CA_PATH_IN_AGENT, LABEL_ROLE};

/// How long the sidecar may take to print its `ready` line.
pub const SIDECAR_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of sidecar output kept to explain a failed start.
const KEEP_LOG_LINES: usize = 40;
pub const AGENT_UID: u64 = 1000;
pub const SIDECAR_UID: u64 = 65534;

fn labels(plan: &Plan, role: &str) -> std::collections::HashMap<String, String> {
    let mut all = plan.labels.clone();
    all.push((LABEL_ROLE.to_owned(), role.to_owned()));
    label_map(&all)
}

fn hardened(runtime: Option<&str>) -> HostConfig {
    HostConfig {
        runtime: runtime.map(str::to_owned),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        pids_limit: Some(4096),
        init: Some(true),
        ..Default::default()
    }
}

fn endpoint(network: &str, aliases: Option<Vec<String>>) -> NetworkingConfig<String> {
    let mut endpoints = std::collections::HashMap::new();
    endpoints.insert(
        network.to_owned(),
        EndpointSettings {
            aliases,
            ..Default::default()
        },
    );
    NetworkingConfig {
        endpoints_config: endpoints,
    }
}

async fn upload(docker: &Docker, id: &str, fs: &Rootfs) -> Result<(), DockerError> {
    let tar = fs.to_tar()?;
    let opts = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    docker
        .upload_to_container(id, Some(opts), tar.into())
        .await
        .map_err(DockerError::api(format!("copying files into {id}")))
}

/// Creates networks and the sidecar, waits until the proxy is ready, then creates (not starts) the
/// agent. Returns the agent container id.
///
/// The CA is made here, in memory: its key reaches the sidecar in a zeroized archive and is
/// never written on the host.
pub async fn launch(
    docker: &Docker,
    plan: &Plan,
    runtime: Option<&str>,
    tokens: &[(String, SecretString)],
    created: &mut Created,
) -> Result<String, DockerError> {
    let ca = certs::CertificateAuthority::generate(certs::DEFAULT_CA_VALIDITY)?;
    create_network(
        created,
        &plan.networks.internal,
        true,
        labels(plan, "internal"),
    )
    .await?;
    let (allow, deny) = network::clients(docker, &plan.networks.internal).await?;
    if plan.networks.egress_created {
        create_network(
            created,
            &plan.networks.egress,
            false,
            labels(plan, "egress"),
        )
        .await?;
    }
    let sidecar = create_sidecar(plan, runtime, created).await?;
    secrets::upload_tokens(docker, &sidecar, tokens, SIDECAR_UID).await?;
    let config = format!(
        "{}\n{}",
        plan.proxy_config,
        plan::clients_toml(&allow, &deny)
    );
    let mut files = Rootfs::new();
    files.add_file(plan::SIDECAR_CONFIG, config.into_bytes(), 0o644)?;
    files.add_file(
        plan::SIDECAR_CA_CERT,
        ca.cert_pem().as_bytes().to_vec(),
        0o644,
    )?;
    for (i, path) in plan.upstream_cas.iter().enumerate() {
        files.copy_host_file(path, &plan::upstream_ca_path(i), 0o644)?;
    }
    upload(docker, &sidecar, &files).await?;
    drop(files);
    secrets::upload_ca_key(docker, &sidecar, &ca.key_pem(), SIDECAR_UID).await?;
    let egress = ConnectNetworkOptions {
        container: sidecar.clone(),
        endpoint_config: EndpointSettings::default(),
    };
    docker
        .connect_network(&plan.networks.egress, egress)
        .await
        .map_err(DockerError::api(format!(
            "connecting the sidecar to {}",
            plan.networks.egress
        )))?;
    docker
        .start_container::<String>(&sidecar, None)
        .await
        .map_err(DockerError::api("starting the sidecar"))?;
    wait_ready(docker, &sidecar).await?;
    create_agent(docker, plan, runtime, ca.cert_pem().as_bytes(), created).await
}

async fn create_sidecar(
    plan: &Plan,
    runtime: Option<&str>,
    created: &mut Created,
) -> Result<String, DockerError> {
    // No token here: they go in as files before the start (`secrets::upload_tokens`), so the
    // sidecar's `docker inspect` and the proxy's environment hold none.
    let env = vec!["RUST_LOG=info".to_owned()];
    let config = Config {
        image: Some(plan.images.sidecar.clone()),
        cmd: Some(vec![
            PROXY_IN_IMAGE.to_owned(),
            "run".to_owned(),
            "--config".to_owned(),
            plan::SIDECAR_CONFIG.to_owned(),
        ]),
        user: Some(format!("{SIDECAR_UID}:{SIDECAR_UID}")),
        env: Some(env),
        labels: Some(labels(plan, "sidecar")),
        host_config: Some(hardened(runtime)),
        networking_config: Some(endpoint(
            &plan.networks.internal,
            Some(plan.aliases.clone()),
        )),
        ..Default::default()
    };
    let name = &plan.containers.sidecar;
    let opts = CreateContainerOptions {
        name: name.clone(),
        platform: None,
    };
    let result = created
        .container(name, move |d| async move {
            d.create_container(Some(opts), config).await
        })
        .await;
    Ok(result.map_err(DockerError::api("creating the sidecar"))?.id)
}

/// Follows the sidecar's output until it says `ready`; fails with its last lines if it exits.
///
/// A follow stream can end while the container still runs (Docker closes one that raced the
/// container's start, moby#37894), so an ended stream is opened again for as long as the
/// container runs; only an exited sidecar is a failure. Lines are reassembled across chunks, so
/// a `ready` line split between two reads is still seen.
async fn wait_ready(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let mut tail = Tail::default();
    let watch = async {
        loop {
            if follow_until_ready(docker, id, &mut tail).await {
                return Ok(());
            }
            match docker.inspect_container(id, None).await {
                Ok(info) if info.state.as_ref().and_then(|s| s.running) == Some(true) => {
                    tokio::time::sleep(LOG_REOPEN_DELAY).await;
                }
                Ok(info) => {
                    let code = info.state.and_then(|s| s.exit_code);
                    return Err(code);
                }
                Err(_) => return Err(None),
            }
        }
    };
    let ready = tokio::time::timeout(SIDECAR_READY_TIMEOUT, watch).await;
    match ready {
        Ok(Ok(())) => Ok(()),
        Ok(Err(code)) => Err(DockerError::Other(format!(
            "the sidecar (egress-proxy) exited{} before it was ready; its last output:\n{}",
            code.map(|c| format!(" with code {c}")).unwrap_or_default(),
            tail.text()
        ))),
        Err(_) => Err(DockerError::Other(format!(
            "the sidecar did not report ready within {}s; its last output:\n{}",
            SIDECAR_READY_TIMEOUT.as_secs(),
            tail.text()
        ))),
    }
}

/// Longest sidecar output line kept whole while looking for `ready`.
const MAX_LOG_LINE: usize = 64 << 10;
/// Pause before opening the sidecar's log stream again after it ended early.
const LOG_REOPEN_DELAY: Duration = Duration::from_millis(100);

/// The last `KEEP_LOG_LINES` lines of one pass over the sidecar's output, to explain a failure.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
}

impl Tail {
    fn push(&mut self, line: &str) {
        if self.lines.len() == KEEP_LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One pass over the sidecar's log stream (from its start): true once a `ready` line is seen,
/// false when the stream ends without one. `tail` holds this pass's last lines.
async fn follow_until_ready(docker: &Docker, id: &str, tail: &mut Tail) -> bool {
    let opts = LogsOptions::<String> {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut logs = docker.logs(id, Some(opts));
    tail.lines.clear();
    let mut partial = String::new();
    while let Some(item) = logs.next().await {
        let Ok(chunk) = item else { break };
        partial.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        for line in complete_lines(&mut partial) {
            if is_ready_line(&line) {
                return true;
            }
            tail.push(&line);
        }
        if partial.len() > MAX_LOG_LINE {
            // No newline in sight: not a `ready` line; keep the buffer bounded.
            tail.push(&partial[..partial.floor_char_boundary(MAX_LOG_LINE)]);
            partial.clear();
        }
    }
    if !partial.is_empty() {
        if is_ready_line(&partial) {
            return true;
        }
        tail.push(&partial);
    }
    false
}

/// Takes the newline-terminated lines off the front of `partial` (without their line ends),
/// leaving an unfinished last line for the next chunk to complete.
fn complete_lines(partial: &mut String) -> Vec<String> {
    let Some(last) = partial.rfind('\n') else {
        return Vec::new();
    };
    let done: String = partial.drain(..=last).collect();
    done.lines().map(str::to_owned).collect()
}

/// The proxy logs `ready` once all listeners are bound (JSON or text tracing output).
pub fn is_ready_line(line: &str) -> bool {
    line.contains("\"message\":\"ready\"")
        || line.trim_end().ends_with(" ready")
        || line.contains("ready listen=")
}

async fn create_agent(
    docker: &Docker,
    plan: &Plan,
    runtime: Option<&str>,
    ca_cert: &[u8],
    created: &mut Created,
) -> Result<String, DockerError> {
    let env: Vec<String> = plan
        .agent_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let config = Config {
        image: Some(plan.images.agent.clone()),
        cmd: Some(plan.command.clone()),
        user: Some(format!("{AGENT_UID}:{AGENT_UID}")),
        working_dir: Some(AGENT_HOME.to_owned()),
        env: Some(env),
        labels: Some(labels(plan, "agent")),
        tty: Some(plan.interactive),
        open_stdin: Some(plan.interactive),
        stdin_once: Some(plan.interactive),
        attach_stdin: Some(plan.interactive),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(HostConfig {
            // Docker's embedded DNS still answers container names (egress, cred-proxy), but forwards
            // every other query here, where nothing listens: no DNS tunnel out of the bottle.
            dns: Some(vec!["127.0.0.1".to_owned()]),
            ..hardened(runtime)
        }),
        networking_config: Some(endpoint(&plan.networks.internal, None)),
        ..Default::default()
    };
    let opts = CreateContainerOptions {
        name: plan.containers.agent.clone(),
        platform: None,
    };
    let id = created
        .container(&plan.containers.agent, move |d| async move {
            d.create_container(Some(opts), config).await
        })
        .await
        .map_err(DockerError::api(format!(
            "creating the agent from image {}",
            plan.images.agent
        )))?
        .id;
    let mut files = Rootfs::new();
    files.add_file(CA_PATH_IN_AGENT, ca_cert.to_vec(), 0o644)?;
    files.add_dir(AGENT_HOME, 0o755, AGENT_UID, AGENT_UID)?;
    for file in &plan.agent_files {
        own_home_parents(&mut files, &file.path)?;
        files.add_owned_file(
            &file.path,
            file.contents.clone().into_bytes(),
            0o600,
            AGENT_UID,
            AGENT_UID,
        )?;
    }
    for (name, dir) in &plan.skill_dirs {
        add_tree(
            &mut files,
            dir,
            &format!("{AGENT_HOME}/.claude/skills/{name}"),
        )?;
    }
    upload(docker, &id, &files).await?;
    Ok(id)
}

/// Copies a host directory (regular files and subdirectories; symlinks are skipped so a skill
/// cannot pull in files from elsewhere) into the agent, owned by the agent user.
fn add_tree(files: &mut Rootfs, dir: &std::path::Path, at: &str) -> Result<(), DockerError> {
    own_home_parents(files, &format!("{at}/x"))?;
    files.add_dir(at, 0o755, AGENT_UID, AGENT_UID)?;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DockerError::Other(format!("skill directory {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            add_tree(files, &path, &format!("{at}/{name}"))?;
        } else if kind.is_file() {
            let data = std::fs::read(&path)
                .map_err(|e| DockerError::Other(format!("{}: {e}", path.display())))?;
            files.add_owned_file(&format!("{at}/{name}"), data, 0o644, AGENT_UID, AGENT_UID)?;
        }
    }
    Ok(())
}

/// Directories between the agent's home and a file in it belong to the agent user.
fn own_home_parents(files: &mut Rootfs, path: &str) -> Result<(), DockerError> {
    let Some(rest) = path.strip_prefix(AGENT_HOME) else {
        return Ok(());
    };
    let mut dir = AGENT_HOME.to_owned();
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir.push('/');
        dir.push_str(part);
        files.add_dir(&dir, 0o755, AGENT_UID, AGENT_UID)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_line_split_across_chunks_is_seen_whole() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"ready","listen":"0.0.0.0:3128"}"#;
        for cut in 0..=line.len() {
            let mut partial = String::new();
            let mut seen = Vec::new();
            for chunk in ["starting\n", &line[..cut], &line[cut..], "\nafter\n"] {
                partial.push_str(chunk);
                seen.extend(complete_lines(&mut partial));
            }
            assert_eq!(seen, ["starting", line, "after"], "cut at {cut}");
            assert!(partial.is_empty());
            assert_eq!(seen.iter().filter(|l| is_ready_line(l)).count(), 1);
        }
    }

    #[test]
    fn an_unfinished_line_waits_for_its_end() {
        let mut partial = String::from("a\r\nb\nhalf");
        assert_eq!(complete_lines(&mut partial), ["a", "b"]);
        assert_eq!(partial, "half");
        assert!(complete_lines(&mut partial).is_empty());
    }
}
