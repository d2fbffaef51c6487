//! One-shot helper containers and file drops, for tests that act from outside a bottle or
//! nudge a running agent.

use std::collections::HashMap;

use bollard::container::{
    Config, CreateContainerOptions, LogsOptions, RemoveContainerOptions, UploadToContainerOptions,
    WaitContainerOptions,
};
use bollard::models::HostConfig;
use bollard::Docker;
use futures_util::StreamExt;
use launcher::docker::rootfs::Rootfs;

/// Runs `sh -c script` in a new container of `image` attached to `network` only, labelled with
/// `label` (`key=value`, for cleanup), and returns its output once it exits.
pub async fn run_helper(
    docker: &Docker,
    image: &str,
    network: &str,
    label: &str,
    script: &str,
) -> String {
    let (k, v) = label.split_once('=').unwrap();
    let name = super::unique("cbt-helper");
    let config = Config {
        image: Some(image.to_owned()),
        cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
        labels: Some(HashMap::from([(k.to_owned(), v.to_owned())])),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(
            Some(CreateContainerOptions {
                name,
                platform: None,
            }),
            config,
        )
        .await
        .unwrap()
        .id;
    docker.start_container::<String>(&id, None).await.unwrap();
    let mut wait = docker.wait_container(&id, None::<WaitContainerOptions<String>>);
    while wait.next().await.is_some() {}
    let mut logs = docker.logs(
        &id,
        Some(LogsOptions::<String> {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    text
}

/// What a running container has printed to stdout so far.
pub async fn stdout_so_far(docker: &Docker, id: &str) -> String {
    let mut logs = docker.logs(
        id,
        Some(LogsOptions::<String> {
            stdout: true,
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    text
}

/// Writes an empty, world-readable file at `path` in the (running) container `id`.
pub async fn drop_file(docker: &Docker, id: &str, path: &str) {
    let mut files = Rootfs::new();
    files.add_file(path, Vec::new(), 0o644).unwrap();
    docker
        .upload_to_container(
            id,
            Some(UploadToContainerOptions {
                path: "/".to_owned(),
                ..Default::default()
            }),
            files.to_tar().unwrap().into(),
        )
        .await
        .unwrap();
}
