//! Route tokens and the CA key: handed to the sidecar as private files, from memory.
//!
//! Why files and not container environment: a container's `Env` is shown by `docker inspect`
//! to anyone who can reach the Docker socket, and the proxy's `/proc/<pid>/environ` keeps the
//! original block for the life of the process. Instead, after the sidecar is created and before
//! it starts, one file per token is uploaded to `/run/bottle-secrets/<token_ref>`, mode 0400,
//! owned by the user the proxy runs as; the proxy config names it with `token_file`. The CA key
//! goes the same way (0600, from `CertificateAuthority::key_pem`), so it never touches the
//! host's disk. Each archive is built in a fixed, zeroized buffer (no reallocation leaves copies
//! behind).

use bollard::container::UploadToContainerOptions;
use bollard::Docker;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::rootfs::tar_header;
use super::DockerError;
use crate::plan::{secret_path, Plan, SIDECAR_CA_KEY, SIDECAR_DIR, SIDECAR_SECRETS_DIR};

/// Tar block size: every header and every file's data (padded) is a multiple of it.
const BLOCK: usize = 512;

/// Token values for the sidecar, read from the host environment by `token_ref` (one per distinct
/// name). Missing or empty variables fail before anything is created, naming the variable (never
/// a value).
pub fn read_tokens(plan: &Plan) -> Result<Vec<(String, SecretString)>, DockerError> {
    let mut tokens: Vec<(String, SecretString)> = Vec::new();
    for route in &plan.routes {
        if tokens.iter().any(|(name, _)| *name == route.token_ref) {
            continue;
        }
        match std::env::var(&route.token_ref) {
            Ok(value) if !value.is_empty() => {
                tokens.push((route.token_ref.clone(), SecretString::from(value)))
            }
            _ => {
                return Err(DockerError::Other(format!(
                    "route {} needs the token in ${}, which is not set in this shell",
                    route.path, route.token_ref
                )))
            }
        }
    }
    Ok(tokens)
}

/// The archive holding `/run/bottle-secrets/` (0500) and one 0400 file per token, all owned by
/// `uid`:`uid`. `None` when there are no tokens.
pub fn secrets_tar(
    tokens: &[(String, SecretString)],
    uid: u64,
) -> Result<Option<Zeroizing<Vec<u8>>>, DockerError> {
    if tokens.is_empty() {
        return Ok(None);
    }
    let dir = SIDECAR_SECRETS_DIR.trim_start_matches('/');
    let (parent, _) = dir.split_once('/').unwrap_or((dir, ""));
    let files: Vec<(String, &[u8], u32)> = tokens
        .iter()
        .map(|(name, value)| {
            let path = secret_path(name).trim_start_matches('/').to_owned();
            (path, value.expose_secret().as_bytes(), 0o400)
        })
        .collect();
    private_tar(&[(parent, 0o755, 0), (dir, 0o500, uid)], &files, uid).map(Some)
}

/// The archive holding the sidecar's CA key (`SIDECAR_CA_KEY`, 0600, owned by `uid`), built
/// from the key in memory: no key file is ever written on the host.
pub fn ca_key_tar(
    key_pem: &Zeroizing<String>,
    uid: u64,
) -> Result<Zeroizing<Vec<u8>>, DockerError> {
    let path = SIDECAR_CA_KEY.trim_start_matches('/');
    let dir = SIDECAR_DIR.trim_start_matches('/');
    let (parent, _) = dir.split_once('/').unwrap_or((dir, ""));
    let files = [(path.to_owned(), key_pem.as_bytes(), 0o600)];
    private_tar(&[(parent, 0o755, 0), (dir, 0o755, 0)], &files, uid)
}

/// A tar of `dirs` (path, mode, owner) and `files` (path, data, mode; owned by `uid`:`uid`),
/// paths relative to `/`, built in a fixed, zeroized buffer.
fn private_tar(
    dirs: &[(&str, u32, u64)],
    files: &[(String, &[u8], u32)],
    uid: u64,
) -> Result<Zeroizing<Vec<u8>>, DockerError> {
    // Upper bound: per entry a header, a possible GNU long-name header and its padded name
    // block(s), and the padded data; the directories; the end-of-archive blocks. Writing past it
    // is an error, never a reallocation (which would leave a copy of the data behind).
    let padded = |n: usize| n.div_ceil(BLOCK) * BLOCK;
    let dirs_size = dirs.iter().fold(0, |acc, (path, _, _)| {
        acc + 2 * BLOCK + padded(path.len() + 2)
    });
    let size = files
        .iter()
        .fold(4 * BLOCK + dirs_size, |acc, (path, data, _)| {
            acc + 2 * BLOCK + padded(path.len() + 1) + padded(data.len())
        });
    let mut buf = Zeroizing::new(vec![0u8; size]);
    let io = |e: std::io::Error| DockerError::Other(format!("building a private archive: {e}"));
    let written = {
        let mut builder = tar::Builder::new(std::io::Cursor::new(&mut buf[..]));
        for (path, mode, owner) in dirs {
            let mut header = tar_header(*mode, *owner, *owner, tar::EntryType::Directory, 0);
            builder
                .append_data(&mut header, format!("{path}/"), std::io::empty())
                .map_err(io)?;
        }
        for (path, data, mode) in files {
            let mut header = tar_header(*mode, uid, uid, tar::EntryType::Regular, data.len());
            builder.append_data(&mut header, path, *data).map_err(io)?;
        }
        let cursor = builder.into_inner().map_err(io)?;
        usize::try_from(cursor.position()).unwrap_or(size)
    };
    buf.truncate(written);
    Ok(buf)
}

/// Uploads a private archive into the (created, not yet started) container `id`. The buffer is
/// zeroized when the Docker client drops its last reference to it.
async fn upload_private(
    docker: &Docker,
    id: &str,
    tar: Zeroizing<Vec<u8>>,
    what: &str,
) -> Result<(), DockerError> {
    let opts = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    docker
        .upload_to_container(id, Some(opts), bytes::Bytes::from_owner(tar))
        .await
        .map_err(DockerError::api(format!("copying {what} into {id}")))
}

/// Uploads the token files into the (created, not yet started) container `id`.
pub async fn upload_tokens(
    docker: &Docker,
    id: &str,
    tokens: &[(String, SecretString)],
    uid: u64,
) -> Result<(), DockerError> {
    match secrets_tar(tokens, uid)? {
        Some(tar) => upload_private(docker, id, tar, "the route tokens").await,
        None => Ok(()),
    }
}

/// Uploads the CA key into the (created, not yet started) sidecar `id`.
pub async fn upload_ca_key(
    docker: &Docker,
    id: &str,
    key_pem: &Zeroizing<String>,
    uid: u64,
) -> Result<(), DockerError> {
    upload_private(docker, id, ca_key_tar(key_pem, uid)?, "the CA key").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn one_private_file_per_token_owned_by_the_proxy_user() {
        let long = "T".repeat(150);
        let tokens = vec![
            ("GITHUB_TOKEN".to_owned(), SecretString::from("ghp_abc")),
            (long.clone(), SecretString::from("x".repeat(1000))),
        ];
        let tar = secrets_tar(&tokens, 65534).unwrap().unwrap();
        assert_eq!(tar.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header();
            let (mode, uid, gid) = (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap());
            let path = entry.path().unwrap().display().to_string();
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            seen.push((path, mode, uid, gid, body));
        }
        let want = |p: &str, mode, uid, body: &str| (p.to_owned(), mode, uid, uid, body.to_owned());
        assert_eq!(
            seen,
            vec![
                want("run/", 0o755, 0, ""),
                want("run/bottle-secrets/", 0o500, 65534, ""),
                want("run/bottle-secrets/GITHUB_TOKEN", 0o400, 65534, "ghp_abc"),
                want(
                    &format!("run/bottle-secrets/{long}"),
                    0o400,
                    65534,
                    &"x".repeat(1000)
                ),
            ]
        );
        assert!(secrets_tar(&[], 65534).unwrap().is_none());
    }

    #[test]
    fn the_ca_key_archive_is_one_private_file_built_from_memory() {
        let ca = certs::CertificateAuthority::generate(certs::DEFAULT_CA_VALIDITY).unwrap();
        let key = ca.key_pem();
        let tar = ca_key_tar(&key, 65534).unwrap();
        assert_eq!(tar.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let h = entry.header();
            let meta = (h.mode().unwrap(), h.uid().unwrap());
            let path = entry.path().unwrap().display().to_string();
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            seen.push((path, meta, body));
        }
        assert_eq!(
            seen,
            vec![
                ("etc/".to_owned(), (0o755, 0), String::new()),
                ("etc/egress-proxy/".to_owned(), (0o755, 0), String::new()),
                (
                    "etc/egress-proxy/ca.key".to_owned(),
                    (0o600, 65534),
                    key.to_string()
                ),
            ]
        );
    }
}
