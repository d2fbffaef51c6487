//! Imported images do not pile up: an import replaces the repository's older images, and two
//! concurrent imports of the same new tag leave one image, not a dangling twin. Two *processes*
//! importing the same tag at once (two bottles started together on a new binary) must not
//! remove each other's image.
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
use launcher::docker::images::{
    ensure_imported, import_tagged, remove_older_images, tag_for, IMAGE_LABEL,
};
use launcher::docker::rootfs::Rootfs;

const REPO: &str = "claude-bottle-test/imports";

fn tar(content: &str) -> Vec<u8> {
    let mut fs = Rootfs::new();
    fs.add_file("/marker", content.as_bytes().to_vec(), 0o644)
        .unwrap();
    fs.to_tar().unwrap()
}

/// Ids of every image of `repo`, by label (dangling ones included) and by name.
async fn images_of(docker: &Docker, repo: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (k, v) in [
        ("label", format!("{IMAGE_LABEL}={repo}")),
        ("reference", repo.to_owned()),
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

async fn images(docker: &Docker) -> Vec<String> {
    images_of(docker, REPO).await
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

/// The interleaving of two launcher processes that once failed both bottles: A imports, B imports
/// the same tag (A's image is now dangling), then A cleans up keeping the id it imported. The tag
/// must still name an image afterwards, and B's cleanup then removes A's leftover.
#[tokio::test(flavor = "multi_thread")]
async fn a_cleanup_racing_another_process_import_keeps_the_tagged_image() {
    let Some(docker) = support::docker_or_skip("docker_images").await else {
        return;
    };
    // Its own repository: the other test counts the images of REPO while this one runs.
    const RACED: &str = "claude-bottle-test/imports-raced";
    let image = tar(&format!("raced {}", std::process::id()));
    let tag = tag_for(RACED, &image);
    // Plain imports, as two launcher processes make them (the in-process lock reaches neither).
    let a = import_tagged(&docker, RACED, image.clone()).await.unwrap();
    let b = import_tagged(&docker, RACED, image.clone()).await.unwrap();
    assert_ne!(
        a, b,
        "the daemon deduplicated the import; the race cannot be staged"
    );

    remove_older_images(&docker, RACED, &a).await;
    let tagged = docker.inspect_image(&tag).await;
    assert_eq!(
        tagged.ok().and_then(|i| i.id).as_deref(),
        Some(b.as_str()),
        "A's cleanup removed the image B's import tagged"
    );

    remove_older_images(&docker, RACED, &b).await;
    assert_eq!(
        images_of(&docker, RACED).await,
        vec![b.clone()],
        "A's dangling image left"
    );
    docker.remove_image(&b, None, None).await.unwrap();
}
