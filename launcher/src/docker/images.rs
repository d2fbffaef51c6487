//! Image assembly without a registry: a rootfs tar built from host binaries, imported through the
//! API (`POST /images/create?fromSrc=-`, i.e. `docker import`) and tagged by the tar's hash, so an
//! unchanged binary reuses the image and a rebuilt one gets a new tag.

use std::path::{Path, PathBuf};

use bollard::image::CreateImageOptions;
use bollard::Docker;
use futures_util::StreamExt;

use super::rootfs::{sha256_hex, Rootfs};
use super::DockerError;

/// Where the proxy binary lives inside the sidecar image.
pub const PROXY_IN_IMAGE: &str = "/usr/local/bin/egress-proxy";
pub const SIDECAR_REPO: &str = "claude-bottle/egress-proxy";
/// Env var naming the egress-proxy binary to put in the sidecar image.
pub const PROXY_BIN_ENV: &str = "CLAUDE_BOTTLE_PROXY_BIN";

/// The `egress-proxy` binary: `$CLAUDE_BOTTLE_PROXY_BIN`, else beside this executable (also one
/// level up, for test binaries in `target/*/deps/`).
pub fn find_proxy_binary() -> Result<PathBuf, DockerError> {
    if let Some(path) = std::env::var_os(PROXY_BIN_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(DockerError::Other(format!(
                "{PROXY_BIN_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| DockerError::Other(e.to_string()))?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("egress-proxy");
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(DockerError::Other(format!(
        "cannot find the egress-proxy binary (tried {}); build it with `cargo build -p egress-proxy` or set {PROXY_BIN_ENV}",
        tried.join(", ")
    )))
}

/// The sidecar rootfs: the proxy, its libraries, and a minimal /etc.
pub fn sidecar_rootfs(proxy: &Path) -> Result<Rootfs, DockerError> {
    let mut fs = Rootfs::base()?;
    fs.add_binary(proxy, PROXY_IN_IMAGE)?;
    fs.add_dir("/etc/egress-proxy", 0o755, 0, 0)?;
    Ok(fs)
}

/// The tag an archive would be imported under: `repo:<first 16 hex of sha256>`.
pub fn tag_for(repo: &str, tar: &[u8]) -> String {
    let hash = sha256_hex(tar);
    format!("{repo}:{}", &hash[..16])
}

/// Label put on every image this crate imports, valued with its repository: the only way to find
/// our *untagged* leftovers (a tag moved to a newer import leaves its old image dangling, with no
/// name to list it by).
pub const IMAGE_LABEL: &str = "dev.claude-bottle.repo";

/// Longest an image import may take, upload and the daemon's progress stream together (bollard's
/// per-call timeout does not cover a streamed answer). A sidecar rootfs is tens of MiB: seconds.
pub const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// One import at a time per process: two bottles (or two tests) importing the same new tag at once
/// would each import it, and the first image would be left dangling when the second took the tag.
static IMPORT_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Imports `tar` as `repo:<hash>` unless an image with that tag exists, then removes this repo's
/// older images (older builds, dangling leftovers). Returns the tag. Images still used by a
/// container are kept: removal is never forced.
pub async fn ensure_imported(
    docker: &Docker,
    repo: &str,
    tar: Vec<u8>,
) -> Result<String, DockerError> {
    let tag = tag_for(repo, &tar);
    let _one_at_a_time = IMPORT_LOCK.lock().await;
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let id = import_tagged(docker, repo, tar).await?;
    remove_older_images(docker, repo, &id).await;
    Ok(tag)
}

/// Imports `tar` as `repo:<hash>`, labelled with `repo`, with no lock and no cleanup (what
/// `ensure_imported` does once it holds the lock). Returns the id the tag names afterwards.
pub async fn import_tagged(
    docker: &Docker,
    repo: &str,
    tar: Vec<u8>,
) -> Result<String, DockerError> {
    let tag = tag_for(repo, &tar);
    let version = tag.rsplit_once(':').map_or("latest", |(_, v)| v);
    let label = format!("LABEL {IMAGE_LABEL}={repo}");
    let options = CreateImageOptions {
        from_src: "-".to_owned(),
        repo: repo.to_owned(),
        tag: version.to_owned(),
        changes: vec![label.as_str()],
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(options), Some(tar.into()), None);
    let import = async {
        while let Some(item) = stream.next().await {
            item.map_err(DockerError::api(format!("importing image {tag}")))?;
        }
        Ok::<(), DockerError>(())
    };
    tokio::time::timeout(IMPORT_TIMEOUT, import)
        .await
        .map_err(|_| {
            DockerError::Other(format!(
                "importing image {tag}: the Docker daemon did not finish within {} s",
                IMPORT_TIMEOUT.as_secs()
            ))
        })??;
    let current = docker
        .inspect_image(&tag)
        .await
        .map_err(DockerError::api(format!(
            "image {tag} missing after import"
        )))?;
    Ok(current.id.unwrap_or_default())
}

/// Best effort: removes every image of `repo` (labelled with it, dangling ones included, or named
/// by it) that was created strictly before the image `keep` (an id). Failures (an image in use, a
/// concurrent removal) leave the image for a later import to try again.
///
/// Only *older* images go because another process may be importing the same tag at this moment
/// (the in-process lock does not reach it): its newer image takes the tag from ours, and removing
/// "everything but mine" would delete the image the tag now names, so that both launches fail to
/// create their containers. An older image can only be a build that a newer import replaced.
pub async fn remove_older_images(docker: &Docker, repo: &str, keep: &str) {
    let Some(keep_created) = created(docker, keep).await else {
        return;
    };
    // By label (ours, dangling ones included) and by name (imports made before the label).
    for (key, value) in [
        ("label", format!("{IMAGE_LABEL}={repo}")),
        ("reference", repo.to_owned()),
    ] {
        let opts = bollard::image::ListImagesOptions {
            all: true,
            filters: std::collections::HashMap::from([(key.to_owned(), vec![value])]),
            ..Default::default()
        };
        let Ok(images) = docker.list_images(Some(opts)).await else {
            continue;
        };
        for image in images.into_iter().filter(|i| i.id != keep) {
            // The listing's `created` has whole seconds; inspect has the daemon's full timestamp.
            if created(docker, &image.id)
                .await
                .is_some_and(|t| t < keep_created)
            {
                let _ = docker.remove_image(&image.id, None, None).await;
            }
        }
    }
}

/// When the daemon created image `id` (RFC 3339 with nanoseconds; its text does not sort, since
/// trailing zeros of the fraction are dropped).
async fn created(docker: &Docker, id: &str) -> Option<time::OffsetDateTime> {
    let stamp = docker.inspect_image(id).await.ok()?.created?;
    time::OffsetDateTime::parse(&stamp, &time::format_description::well_known::Rfc3339).ok()
}

/// Assembles and imports the sidecar image for the given proxy binary (older sidecar images are
/// removed by the import).
pub async fn ensure_sidecar_image(docker: &Docker, proxy: &Path) -> Result<String, DockerError> {
    let tar = sidecar_rootfs(proxy)?.to_tar()?;
    ensure_imported(docker, SIDECAR_REPO, tar).await
}

/// The sidecar tag without Docker (for `--dry-run`): computed from the same bytes.
pub fn sidecar_tag(proxy: &Path) -> Result<String, DockerError> {
    let tar = sidecar_rootfs(proxy)?.to_tar()?;
    Ok(tag_for(SIDECAR_REPO, &tar))
}
