//! Imported images do not pile up: an import replaces the repository's older images, and two
//! concurrent imports of the same new tag leave one image, not a dangling twin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::collections::HashMap;

use bollard::image::ListImagesOptions;
use bollard::Docker;
use launcher::docker::images::{ensure_imported, IMAGE_LABEL};
use launcher::docker::rootfs::Rootfs;

const REPO: &str = "claude-bottle-test/imports";

fn tar(content: &str) -> Vec<u8> {
    let mut fs = Rootfs::new();
    fs.add_file("/marker", content.as_bytes().to_vec(), 0o644)
        .unwrap();
    fs.to_tar().unwrap()
}

/// Ids of every image of `REPO`, by label (dangling ones included) and by name.
async fn images(docker: &Docker) -> Vec<String> {
    let mut ids = Vec::new();
    for (k, v) in [
        ("label", format!("{IMAGE_LABEL}={REPO}")),
        ("reference", REPO.to_owned()),
    ] {
        let opts = ListImagesOptions {
            all: true,
            filters: HashMap::from([(k.to_owned(), vec![v])]),
            ..Default::default()
        };
        ids.extend(
            docker
                .list_images(Some(opts))
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.id),
        );
    }
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_replaces_older_images_and_concurrent_imports_leave_one() {
    let Some(docker) = support::docker_or_skip("docker_images").await else {
        return;
    };
    let run = std::process::id();
    let first = ensure_imported(&docker, REPO, tar(&format!("first {run}")))
        .await
        .unwrap();
    assert_eq!(images(&docker).await.len(), 1);

    let second = tar(&format!("second {run}"));
    let (a, b) = tokio::join!(
        ensure_imported(&docker, REPO, second.clone()),
        ensure_imported(&docker, REPO, second)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_ne!(a, first);
    let left = images(&docker).await;
    let current = docker.inspect_image(&a).await.unwrap().id.unwrap();
    assert_eq!(
        left,
        vec![current.clone()],
        "older or dangling images left behind"
    );
    assert!(
        docker.inspect_image(&first).await.is_err(),
        "{first} still there"
    );

    docker.remove_image(&current, None, None).await.unwrap();
}
