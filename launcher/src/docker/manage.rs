//! `ps`, `stop`, `logs` and `doctor`: everything is found by the `claude-bottle.bottle` label, so
//! these work across launcher processes and after a crash.

use std::collections::{BTreeMap, HashMap};

use bollard::container::{ListContainersOptions, LogOutput, LogsOptions, RemoveContainerOptions};
use bollard::network::ListNetworksOptions;
use bollard::Docker;
use futures_util::Stream;
use serde::Serialize;

use super::{is_not_found, DockerError};
use crate::plan::{LABEL_AGENT, LABEL_BOTTLE, LABEL_ROLE};

/// Network removal retries while concurrently removed containers release their endpoints.
const NETWORK_REMOVE_RETRIES: u32 = 10;

#[derive(Debug, Clone, Serialize)]
pub struct BottleRow {
    pub id: String,
    pub agent: String,
    /// Container role → state (`running`, `exited`, ...).
    pub containers: BTreeMap<String, String>,
}

fn label_filter(id: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match id {
        Some(id) => format!("{LABEL_BOTTLE}={id}"),
        None => LABEL_BOTTLE.to_owned(),
    };
    HashMap::from([("label".to_owned(), vec![label])])
}

/// All bottles that have a container, running or not.
pub async fn list(docker: &Docker) -> Result<Vec<BottleRow>, DockerError> {
    let opts = ListContainersOptions {
        all: true,
        filters: label_filter(None),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(opts))
        .await
        .map_err(DockerError::api("listing containers"))?;
    let mut rows: BTreeMap<String, BottleRow> = BTreeMap::new();
    for c in containers {
        let labels = c.labels.unwrap_or_default();
        let Some(id) = labels.get(LABEL_BOTTLE).cloned() else {
            continue;
        };
        let row = rows.entry(id.clone()).or_insert_with(|| BottleRow {
            id,
            agent: labels.get(LABEL_AGENT).cloned().unwrap_or_default(),
            containers: BTreeMap::new(),
        });
        let role = labels
            .get(LABEL_ROLE)
            .cloned()
            .unwrap_or_else(|| "?".to_owned());
        row.containers
            .insert(role, c.state.unwrap_or_else(|| "unknown".to_owned()));
    }
    Ok(rows.into_values().collect())
}

/// Removes the containers and networks of one bottle (or of all). Returns what was removed.
pub async fn stop(docker: &Docker, id: Option<&str>) -> Result<Vec<String>, DockerError> {
    let mut removed = Vec::new();
    let opts = ListContainersOptions {
        all: true,
        filters: label_filter(id),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(opts))
        .await
        .map_err(DockerError::api("listing containers"))?;
    for c in containers {
        let Some(cid) = c.id else { continue };
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(&cid, Some(opts)).await {
            Ok(()) => removed.push(format!("container {}", name_of(c.names.as_deref(), &cid))),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(DockerError::api(format!("removing container {cid}"))(e)),
        }
    }
    let opts = ListNetworksOptions {
        filters: label_filter(id),
    };
    let networks = docker
        .list_networks(Some(opts))
        .await
        .map_err(DockerError::api("listing networks"))?;
    for n in networks {
        let Some(name) = n.name else { continue };
        // A container being removed concurrently may still hold an endpoint for a moment.
        let mut attempt = 0;
        loop {
            match docker.remove_network(&name).await {
                Ok(()) => removed.push(format!("network {name}")),
                Err(e) if is_not_found(&e) => {}
                Err(_) if attempt < NETWORK_REMOVE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Err(DockerError::api(format!("removing network {name}"))(e)),
            }
            break;
        }
    }
    Ok(removed)
}

fn name_of(names: Option<&[String]>, id: &str) -> String {
    names
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id.chars().take(12).collect())
}

/// The sidecar's stdout of one bottle: the proxy's audit stream (one JSON line per decision).
pub async fn audit_stream(
    docker: &Docker,
    id: &str,
    follow: bool,
) -> Result<impl Stream<Item = Result<LogOutput, bollard::errors::Error>>, DockerError> {
    let mut filters = label_filter(Some(id));
    filters
        .entry("label".to_owned())
        .or_default()
        .push(format!("{LABEL_ROLE}=sidecar"));
    let opts = ListContainersOptions {
        all: true,
        filters,
        ..Default::default()
    };
    let found = docker
        .list_containers(Some(opts))
        .await
        .map_err(DockerError::api("listing containers"))?;
    let sidecar = found
        .into_iter()
        .find_map(|c| c.id)
        .ok_or_else(|| DockerError::Other(format!("no bottle `{id}` (see `claude-bottle ps`)")))?;
    let opts = LogsOptions::<String> {
        follow,
        stdout: true,
        stderr: false,
        ..Default::default()
    };
    Ok(docker.logs(&sidecar, Some(opts)))
}

/// One line of `doctor` output.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// Engine version, runtimes, and which of the given images are present.
pub async fn doctor(docker: &Docker, images: &[String]) -> Vec<Check> {
    let mut checks = Vec::new();
    match docker.version().await {
        Ok(v) => checks.push(Check {
            what: "docker".to_owned(),
            ok: true,
            detail: format!(
                "engine {} (API {}; client negotiated {})",
                v.version.unwrap_or_default(),
                v.api_version.unwrap_or_default(),
                docker.client_version()
            ),
        }),
        Err(e) => checks.push(Check {
            what: "docker".to_owned(),
            ok: false,
            detail: e.to_string(),
        }),
    }
    match docker.info().await {
        Ok(info) => {
            let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
            runtimes.sort();
            let gvisor = runtimes.iter().any(|r| r == "runsc");
            checks.push(Check {
                what: "runtimes".to_owned(),
                ok: true,
                detail: format!(
                    "{}{}",
                    runtimes.join(", "),
                    if gvisor {
                        " (gVisor runsc will be used)"
                    } else {
                        " (no runsc: bottles use the default runtime)"
                    }
                ),
            });
        }
        Err(e) => checks.push(Check {
            what: "runtimes".to_owned(),
            ok: false,
            detail: e.to_string(),
        }),
    }
    for image in images {
        let present = docker.inspect_image(image).await.is_ok();
        checks.push(Check {
            what: format!("image {image}"),
            ok: present,
            detail: if present { "present" } else { "missing" }.to_owned(),
        });
    }
    checks
}
