//! Builds image root filesystems and upload archives as tar bytes in memory, from host files.
//!
//! Why: there is no registry here, so images are assembled from binaries already on the host (the
//! built `egress-proxy`, and for tests curl/git/sh) plus the shared libraries `ldd` lists, then
//! imported with the Docker API (`docker import`). Entries get fixed mtimes so the same inputs give
//! the same bytes, and the image tag can be a hash of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Upper bound on one rootfs, so a wrong path (a directory of videos) fails instead of eating RAM.
pub const MAX_ROOTFS_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the image would exceed {MAX_ROOTFS_BYTES} bytes")]
    TooLarge,
    #[error("`{0}` is not an absolute path inside the image")]
    BadPath(String),
}

#[derive(Debug, Clone)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Debug, Clone)]
struct Meta {
    entry: Entry,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// An in-memory tree of files to become a tar archive.
#[derive(Debug, Clone, Default)]
pub struct Rootfs {
    entries: BTreeMap<String, Meta>,
    bytes: usize,
}

fn rel(path: &str) -> Result<String, RootfsError> {
    let trimmed = path.trim_start_matches('/');
    if !path.starts_with('/') || trimmed.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(RootfsError::BadPath(path.to_owned()));
    }
    Ok(trimmed.to_owned())
}

impl Rootfs {
    /// An empty archive (for uploads into an existing container).
    pub fn new() -> Self {
        Self::default()
    }

    /// A minimal base for a single-binary image: `/etc/passwd`, `/etc/group`, `/tmp` (1777),
    /// and a home for the unprivileged users the containers run as.
    pub fn base() -> Result<Self, RootfsError> {
        let mut fs = Self::new();
        fs.add_file(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".to_vec(),
            0o644,
        )?;
        fs.add_file(
            "/etc/group",
            b"root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n".to_vec(),
            0o644,
        )?;
        fs.add_file("/etc/nsswitch.conf", b"hosts: files dns\n".to_vec(), 0o644)?;
        fs.add_dir("/tmp", 0o1777, 0, 0)?;
        fs.add_dir("/home/agent", 0o755, 1000, 1000)?;
        Ok(fs)
    }

    /// Adds a directory (and missing parents, root-owned 0755).
    pub fn add_dir(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Result<(), RootfsError> {
        let rel = rel(path)?;
        self.parents(&rel)?;
        self.entries.insert(
            rel,
            Meta {
                entry: Entry::Dir,
                mode,
                uid,
                gid,
            },
        );
        Ok(())
    }

    /// Adds a root-owned file.
    pub fn add_file(
        &mut self,
        path: &str,
        contents: Vec<u8>,
        mode: u32,
    ) -> Result<(), RootfsError> {
        self.add_owned_file(path, contents, mode, 0, 0)
    }

    pub fn add_owned_file(
        &mut self,
        path: &str,
        contents: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Result<(), RootfsError> {
        let rel = rel(path)?;
        self.parents(&rel)?;
        self.bytes = self.bytes.saturating_add(contents.len());
        if self.bytes > MAX_ROOTFS_BYTES {
            return Err(RootfsError::TooLarge);
        }
        self.entries.insert(
            rel,
            Meta {
                entry: Entry::File(contents),
                mode,
                uid,
                gid,
            },
        );
        Ok(())
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), RootfsError> {
        let rel = rel(path)?;
        self.parents(&rel)?;
        self.entries.insert(
            rel,
            Meta {
                entry: Entry::Symlink(target.to_owned()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        );
        Ok(())
    }

    fn parents(&mut self, rel: &str) -> Result<(), RootfsError> {
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Meta {
                entry: Entry::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
        Ok(())
    }

    /// Copies a host file (following symlinks) into the image at `at`.
    pub fn copy_host_file(&mut self, host: &Path, at: &str, mode: u32) -> Result<(), RootfsError> {
        let contents = std::fs::read(host).map_err(|source| RootfsError::Io {
            path: host.display().to_string(),
            source,
        })?;
        self.add_file(at, contents, mode)
    }

    /// Copies an executable and every shared library `ldd` reports for it, at the same paths.
    pub fn add_binary(&mut self, host: &Path, at: &str) -> Result<(), RootfsError> {
        self.copy_host_file(host, at, 0o755)?;
        for lib in shared_libs(host) {
            let at = lib.clone();
            if !self.entries.contains_key(at.trim_start_matches('/')) {
                self.copy_host_file(Path::new(&lib), &at, 0o755)?;
            }
        }
        Ok(())
    }

    /// The archive, with entries in path order and fixed mtimes.
    pub fn to_tar(&self) -> Result<Vec<u8>, RootfsError> {
        let io = |source| RootfsError::Io {
            path: "<tar>".to_owned(),
            source,
        };
        let mut builder = tar::Builder::new(Vec::with_capacity(self.bytes + 64 * 1024));
        for (path, meta) in &self.entries {
            let header = |kind, size| tar_header(meta.mode, meta.uid, meta.gid, kind, size);
            match &meta.entry {
                Entry::Dir => {
                    let mut header = header(tar::EntryType::Directory, 0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(io)?;
                }
                Entry::File(data) => {
                    let mut header = header(tar::EntryType::Regular, data.len());
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .map_err(io)?;
                }
                Entry::Symlink(target) => {
                    let mut header = header(tar::EntryType::Symlink, 0);
                    builder.append_link(&mut header, path, target).map_err(io)?;
                }
            }
        }
        builder.into_inner().map_err(io)
    }
}

/// A GNU tar header with a fixed mtime, so the same inputs give the same archive (and image tag).
pub(crate) fn tar_header(
    mode: u32,
    uid: u64,
    gid: u64,
    kind: tar::EntryType,
    size: usize,
) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(1);
    header.set_entry_type(kind);
    header.set_size(size as u64);
    header
}

/// Absolute library paths from `ldd` (empty for static binaries or when `ldd` is missing).
pub fn shared_libs(binary: &Path) -> Vec<String> {
    let Ok(out) = Command::new("ldd").arg(binary).output() else {
        return Vec::new();
    };
    parse_ldd(&String::from_utf8_lossy(&out.stdout))
}

fn parse_ldd(text: &str) -> Vec<String> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let candidate = match line.split_once("=>") {
            Some((_, right)) => right.trim(),
            None => line.trim(),
        };
        if let Some(path) = candidate.split_whitespace().next() {
            if path.starts_with('/') && !libs.iter().any(|l| l == path) {
                libs.push(path.to_owned());
            }
        }
    }
    libs
}

/// Hex SHA-256 of some bytes (image tags, so identical inputs reuse the imported image).
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n\tlibmissing.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").is_empty());
    }

    #[test]
    fn tar_is_deterministic_and_has_parents() {
        let build = || {
            let mut fs = Rootfs::base().unwrap();
            fs.add_owned_file(
                "/home/agent/.config/tea/config.yml",
                b"x".to_vec(),
                0o600,
                1000,
                1000,
            )
            .unwrap();
            fs.to_tar().unwrap()
        };
        let a = build();
        assert_eq!(sha256_hex(&a), sha256_hex(&build()));
        let mut archive = tar::Archive::new(a.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            names.contains(&"home/agent/.config/".to_owned()),
            "{names:?}"
        );
        assert!(names.contains(&"tmp/".to_owned()));
    }

    #[test]
    fn refuses_relative_and_dotdot_paths() {
        let mut fs = Rootfs::new();
        assert!(fs.add_file("etc/x", vec![], 0o644).is_err());
        assert!(fs.add_file("/etc/../x", vec![], 0o644).is_err());
    }

    #[test]
    fn binary_brings_its_libraries() {
        let mut fs = Rootfs::new();
        fs.add_binary(Path::new("/usr/bin/env"), "/usr/bin/env")
            .unwrap();
        let tar = fs.to_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
    }
}
