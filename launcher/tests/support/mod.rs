//! Shared pieces of the Docker tests: connect-or-skip, stand-in images assembled from host
//! binaries, the claude-bottle binary with a private home, and label-scoped cleanup.
#![allow(dead_code)]

pub mod containers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bollard::container::{ListContainersOptions, RemoveContainerOptions};
use bollard::network::ListNetworksOptions;
use bollard::Docker;
use launcher::docker::images::ensure_imported;
use launcher::docker::rootfs::Rootfs;

pub const TEST_LABEL: &str = "claude-bottle-test.run";

/// How long a test waits for a bottle's containers to be running. Before starting them the
/// launcher imports the sidecar image (the egress-proxy binary and its libraries, ~200 MB) and
/// the agent image; with the other Docker tests importing in parallel on a loaded 2-core CI
/// machine that once took over 90 s. A passing run waits only until the container is up.
pub const START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// A Docker client, or `None` with a printed reason. With `CI` set, no daemon is a failure.
pub async fn docker_or_skip(test: &str) -> Option<Docker> {
    match launcher::docker::connect().await {
        Ok(d) => match d.ping().await {
            Ok(_) => Some(d),
            Err(e) => skip(test, &e.to_string()),
        },
        Err(e) => skip(test, &e.to_string()),
    }
}

fn skip(test: &str, why: &str) -> Option<Docker> {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci {
        panic!("{test}: CI is set and no Docker daemon answers: {why}");
    }
    eprintln!("SKIP {test}: no Docker daemon answers ({why}); set CI=true to make this a failure");
    None
}

/// `target/<profile>/` (the test binary lives in its `deps/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A binary built by another workspace crate; a clear failure when it was not built.
pub fn built_binary(name: &str, package: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p {package}` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The stand-in agent: /bin/sh (dash), curl, git (+ https helper), printenv, env, getent, cat,
/// sleep, with their libraries. What the real agent image has that matters here: a shell, HTTP
/// and git clients that honour HTTPS_PROXY and the CA env vars.
pub async fn standin_agent_image(docker: &Docker) -> String {
    let mut fs = Rootfs::base().unwrap();
    let sh = which("dash")
        .or_else(|| which("sh"))
        .expect("no dash/sh on the host");
    fs.add_binary(&sh, "/bin/sh").unwrap();
    for tool in [
        "curl", "printenv", "env", "getent", "cat", "sleep", "ls", "id",
    ] {
        let host = which(tool).unwrap_or_else(|| panic!("{tool} is not installed on the host"));
        fs.add_binary(&host, &format!("/usr/bin/{tool}")).unwrap();
    }
    let git = which("git").expect("git is not installed on the host");
    fs.add_binary(&git, "/usr/bin/git").unwrap();
    let exec_path = Command::new(&git).arg("--exec-path").output().unwrap();
    let exec_path = String::from_utf8(exec_path.stdout)
        .unwrap()
        .trim()
        .to_owned();
    for helper in ["git-remote-http", "git-remote-https"] {
        let host = Path::new(&exec_path).join(helper);
        if host.is_file() {
            fs.add_binary(&host, &format!("{exec_path}/{helper}"))
                .unwrap();
        }
    }
    ensure_imported(docker, "claude-bottle-test/agent", fs.to_tar().unwrap())
        .await
        .unwrap()
}

/// The testkit upstream as an image (certificates are uploaded per container).
pub async fn upstream_image(docker: &Docker) -> String {
    let bin = built_binary("test-upstream", "testkit");
    let mut fs = Rootfs::base().unwrap();
    fs.add_binary(&bin, "/usr/local/bin/test-upstream").unwrap();
    ensure_imported(docker, "claude-bottle-test/upstream", fs.to_tar().unwrap())
        .await
        .unwrap()
}

/// A private claude-bottle home with one bottle and one agent.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub tmp: PathBuf,
}

impl Home {
    pub fn new(bottle: &str, agent: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bottles")).unwrap();
        std::fs::create_dir_all(dir.path().join("agents")).unwrap();
        std::fs::write(dir.path().join("bottles/test.md"), bottle).unwrap();
        std::fs::write(dir.path().join("agents/tester.md"), agent).unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        Home { dir, tmp }
    }

    /// `claude-bottle ARGS` with this home, a private TMPDIR, and the built proxy binary.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-bottle"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("CLAUDE_BOTTLE_HOME", self.dir.path())
            .env("TMPDIR", &self.tmp)
            .env(
                "CLAUDE_BOTTLE_PROXY_BIN",
                built_binary("egress-proxy", "egress-proxy"),
            )
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Files left in the private TMPDIR (the CA temp dir must be gone).
    pub fn leftover_tmp(&self) -> Vec<String> {
        std::fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

fn filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![label.to_owned()])])
}

/// Containers and networks carrying `label` (`key=value`).
pub async fn resources(docker: &Docker, label: &str) -> (Vec<String>, Vec<String>) {
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filter(label),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.first().cloned()))
        .collect();
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: filter(label),
        }))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    (containers, networks)
}

/// Inspects a container that was just listed; `None` if it is gone by now (a start being torn
/// down removes its containers between a listing and this call). Any other error panics.
pub async fn inspect_if_present(
    docker: &Docker,
    name: &str,
) -> Option<bollard::models::ContainerInspectResponse> {
    match docker
        .inspect_container(name.trim_start_matches('/'), None)
        .await
    {
        Ok(info) => Some(info),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => None,
        Err(e) => panic!("inspecting {name}: {e}"),
    }
}

/// Removes everything with `label` when dropped (also when the test panics).
pub struct Cleanup {
    pub label: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = self.label.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let Ok(docker) = launcher::docker::connect().await else {
                    return;
                };
                let (containers, _) = resources(&docker, &label).await;
                for c in containers {
                    let _ = docker
                        .remove_container(
                            c.trim_start_matches('/'),
                            Some(RemoveContainerOptions {
                                force: true,
                                ..Default::default()
                            }),
                        )
                        .await;
                }
                let (_, networks) = resources(&docker, &label).await;
                for n in networks {
                    let _ = docker.remove_network(&n).await;
                }
            });
        })
        .join();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
