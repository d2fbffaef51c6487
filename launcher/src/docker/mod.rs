//! Everything that talks to the Docker engine, through its API (bollard): no `docker` CLI, so no
//! secret is ever on a process argv.

pub mod created;
pub mod images;
pub mod manage;
pub mod network;
pub mod rootfs;
pub mod run;
pub mod secrets;
pub mod topology;

use std::collections::HashMap;

use bollard::Docker;

/// How long one Docker API call may take before it is abandoned (seconds).
pub const API_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine ({0}); is dockerd running and is the socket readable?"
    )]
    Unreachable(bollard::errors::Error),
    #[error("{context}: {source}")]
    Api {
        context: String,
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error("{0}")]
    Other(String),
}

impl DockerError {
    pub fn api(context: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let context = context.into();
        move |source| DockerError::Api { context, source }
    }
}

/// Connects with the local defaults (the unix socket or `DOCKER_HOST`) and agrees on an API
/// version the engine speaks (20.10 speaks 1.41; bollard 0.18 defaults to newer).
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(DockerError::Unreachable)?
        .with_timeout(std::time::Duration::from_secs(API_TIMEOUT_SECS));
    docker
        .negotiate_version()
        .await
        .map_err(DockerError::Unreachable)
}

/// `runsc` (gVisor) when the engine lists it, else the engine default.
pub async fn pick_runtime(docker: &Docker) -> Option<String> {
    let info = docker.info().await.ok()?;
    info.runtimes
        .filter(|r| r.contains_key("runsc"))
        .map(|_| "runsc".to_owned())
}

/// Labels as the API wants them.
pub fn label_map(labels: &[(String, String)]) -> HashMap<String, String> {
    labels.iter().cloned().collect()
}

/// Whether a removal error means someone else already removed it or is removing it (404, 409):
/// fine during cleanup, e.g. when `claude-bottle stop` races the launcher's own teardown.
pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }
    )
}
