//! Two bottles at once: neither agent can reach the other bottle's sidecar.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

const AGENT: &str = "---\nbottle: test\n---\nYou are a test.\n";

#[tokio::test(flavor = "multi_thread")]
async fn parallel_bottles_cannot_reach_each_others_sidecar() {
    let Some(docker) = docker_or_skip("parallel_bottles_cannot_reach_each_others_sidecar").await
    else {
        return;
    };
    let image = standin_agent_image(&docker).await;
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let _cleanup = Cleanup {
        label: label.clone(),
    };
    // B's own label, unique to this run: a leftover bottle of an earlier run is never taken for B.
    let which_b = format!("which=b-{run}");
    let home_b = Home::new("---\n---\n", AGENT);
    let mut b = home_b
        .command(&[
            "start",
            "tester",
            "--yes",
            "--agent-image",
            &image,
            "--label",
            &label,
            "--label",
            &which_b,
            "--",
            "sleep",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // B's sidecar address on B's internal network, once B's agent runs.
    let deadline = Instant::now() + START_DEADLINE;
    let mut target = None;
    while Instant::now() < deadline && target.is_none() {
        if matches!(b.try_wait(), Ok(Some(_))) {
            break; // B's launcher is done: its bottle will not come up now
        }
        let (containers, _) = resources(&docker, &which_b).await;
        let mut agent_running = false;
        let mut sidecar = None;
        for name in containers {
            // Gone since the listing (a torn-down start): the launcher's output below says why.
            let Some(info) = inspect_if_present(&docker, &name).await else {
                continue;
            };
            let labels = info
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            match labels.get("claude-bottle.role").map(String::as_str) {
                Some("agent") => agent_running = info.state.and_then(|s| s.running) == Some(true),
                Some("sidecar") => {
                    let nets = info
                        .network_settings
                        .and_then(|n| n.networks)
                        .unwrap_or_default();
                    let internal = nets.iter().find(|(n, _)| n.ends_with("-internal"));
                    sidecar = internal.and_then(|(_, e)| e.ip_address.clone());
                }
                _ => {}
            }
        }
        if agent_running {
            target = sidecar;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let Some(target) = target else {
        let _ = b.kill();
        let out = b.wait_with_output().unwrap();
        panic!(
            "bottle B never came up; its launcher said:\n{}",
            stderr(&out)
        );
    };
    let home_a = Home::new("---\n---\n", AGENT);
    let script = format!(
        r#"q() {{ "$@" 2>/dev/null; echo " rc=$?"; }}
echo "direct=$(q curl -sS --noproxy '*' --connect-timeout 3 -o /dev/null -w '%{{http_code}}' http://{target}:3128/)"
echo "routes=$(q curl -sS --noproxy '*' --connect-timeout 3 -o /dev/null -w '%{{http_code}}' http://{target}:9099/)"
echo "via_proxy=$(q curl -sS -o /dev/null -w '%{{http_code}}' http://{target}:3128/)"
echo "own=$(q curl -sS --noproxy '*' --connect-timeout 3 -o /dev/null -w '%{{http_code}}' http://egress:3128/)"
"#
    );
    let out = home_a.run(
        &[
            "start",
            "tester",
            "--yes",
            "--agent-image",
            &image,
            "--label",
            &label,
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(b.id().to_string())
        .status();
    let b_out = b.wait_with_output().unwrap();
    let text = stdout(&out);
    eprintln!("A:\n{text}\n{}\nB: {}", stderr(&out), stderr(&b_out));
    assert_eq!(out.status.code(), Some(0));
    let line = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        line("direct").starts_with("000"),
        "reached B's proxy: {text}"
    );
    assert!(
        line("routes").starts_with("000"),
        "reached B's routes: {text}"
    );
    assert!(
        line("via_proxy").starts_with("403"),
        "A's proxy let a private IP through: {text}"
    );
    assert!(
        !line("own").starts_with("000"),
        "A cannot reach its own sidecar (test is vacuous): {text}"
    );
    assert_eq!(
        b_out.status.code(),
        Some(130),
        "B was not torn down by SIGTERM"
    );
    let (containers, networks) = resources(&docker, &label).await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "{containers:?} {networks:?}"
    );
}
