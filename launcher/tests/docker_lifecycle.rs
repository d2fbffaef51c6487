//! A real bottle on the real engine: exit codes, env hygiene, teardown after exit and after
//! SIGINT or SIGQUIT.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::time::{Duration, Instant};

use support::*;

const AGENT: &str = "---\nbottle: test\n---\nYou are a test.\n";

fn bottle_with_token(token_ref: &str) -> String {
    format!(
        "---\ncred_proxy:\n  routes:\n    - path: /anthropic/\n      upstream: https://api.anthropic.com\n      auth_scheme: Bearer\n      token_ref: {token_ref}\n      role: anthropic-base-url\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_is_propagated_and_everything_is_removed() {
    let Some(docker) = docker_or_skip("exit_code_is_propagated_and_everything_is_removed").await
    else {
        return;
    };
    let image = standin_agent_image(&docker).await;
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let _cleanup = Cleanup {
        label: label.clone(),
    };
    let home = Home::new(
        "---\ngit_user:\n  name: \"Test Er\"\n  email: t@example.com\n---\n",
        "---\nbottle: test\nskills: [review]\n---\nYou are a test.\n",
    );
    std::fs::create_dir_all(home.dir.path().join("skills/review/refs")).unwrap();
    std::fs::write(
        home.dir.path().join("skills/review/SKILL.md"),
        "skill-marker\n",
    )
    .unwrap();
    std::fs::write(
        home.dir.path().join("skills/review/refs/a.md"),
        "ref-marker\n",
    )
    .unwrap();
    // No usable temp dir: the CA is made and handed over in memory, so the launcher needs none.
    let no_tmp = home.tmp.join("absent");
    let out = home.run(
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
            "echo out-marker; echo err-marker >&2; cat ~/.claude/skills/review/SKILL.md ~/.claude/skills/review/refs/a.md ~/.gitconfig; echo uid=$(id -u); exit 7",
        ],
        &[("TMPDIR", no_tmp.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("skill-marker") && text.contains("ref-marker"),
        "{text}"
    );
    assert!(text.contains("name = \"Test Er\""), "{text}");
    assert!(text.contains("uid=1000"), "{text}");
    assert!(stdout(&out).contains("out-marker"), "{}", stdout(&out));
    assert!(stderr(&out).contains("err-marker"), "{}", stderr(&out));
    let (containers, networks) = resources(&docker, &label).await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "left: {containers:?} {networks:?}"
    );
    assert!(
        home.leftover_tmp().is_empty() && !no_tmp.exists(),
        "files left: {:?}",
        home.leftover_tmp()
    );
}

/// The agent container of the bottle labelled `label` once it runs, inspected; `None` when the
/// launcher exits first or `START_DEADLINE` passes.
async fn running_agent(
    docker: &bollard::Docker,
    label: &str,
    child: &mut std::process::Child,
) -> Option<bollard::models::ContainerInspectResponse> {
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None; // the launcher is done: the agent will not run now
        }
        let (containers, _) = resources(docker, label).await;
        for name in containers {
            // Gone since the listing (a torn-down start): the launcher's output says why.
            let Some(info) = inspect_if_present(docker, &name).await else {
                continue;
            };
            let labels = info
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            if labels.get("claude-bottle.role").map(String::as_str) == Some("agent")
                && info.state.as_ref().and_then(|s| s.running) == Some(true)
            {
                return Some(info);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_env_and_inspect_hold_no_token() {
    let Some(docker) = docker_or_skip("agent_env_and_inspect_hold_no_token").await else {
        return;
    };
    let image = standin_agent_image(&docker).await;
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let _cleanup = Cleanup {
        label: label.clone(),
    };
    let token_ref = format!("CB_TEST_TOKEN_{}", run.replace('-', "_").to_uppercase());
    let token = format!("sk-ant-oat01-{}", unique("secretvalue"));
    let home = Home::new(&bottle_with_token(&token_ref), AGENT);
    let mut child = home
        .command(&[
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
            "printenv; cat /etc/claude-bottle/ca.pem; sleep 20",
        ])
        .env(&token_ref, &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Inspect the agent while it runs: env, cmd, labels, everything Docker knows about it.
    let inspected = running_agent(&docker, &label, &mut child).await;
    // Interrupt only once the agent has printed everything (its output is what is checked).
    if let Some(id) = inspected.as_ref().and_then(|i| i.id.clone()) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && !containers::stdout_so_far(&docker, &id)
                .await
                .contains("END CERTIFICATE")
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let inspected = inspected.map(|info| serde_json::to_string(&info).unwrap());
    let _ = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let Some(inspected) = inspected else {
        panic!(
            "the agent never ran; launcher stdout:\n{}\nstderr:\n{}",
            stdout(&out),
            stderr(&out)
        );
    };
    assert!(
        !inspected.contains(&token),
        "token in docker inspect of the agent"
    );
    assert!(inspected.contains("CLAUDE_CODE_OAUTH_TOKEN=claude-bottle-placeholder"));
    let printed = stdout(&out);
    assert!(
        printed.contains("HTTPS_PROXY=http://egress:3128"),
        "{printed}\n{}",
        stderr(&out)
    );
    assert!(
        printed.contains("ANTHROPIC_BASE_URL=http://cred-proxy:9099/anthropic"),
        "{printed}"
    );
    assert!(
        printed.contains("SSL_CERT_FILE=/etc/claude-bottle/ca.pem"),
        "{printed}"
    );
    assert!(printed.contains("-----BEGIN CERTIFICATE-----"), "{printed}");
    assert!(!printed.contains(&token), "token in the agent's env");
    assert!(!stderr(&out).contains(&token), "token in launcher output");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let (containers, networks) = resources(&docker, &label).await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "left after SIGINT: {containers:?} {networks:?}"
    );
    assert!(
        home.leftover_tmp().is_empty(),
        "CA files left: {:?}",
        home.leftover_tmp()
    );
}

/// SIGQUIT (Ctrl-\) ends a bottle like SIGINT: everything removed, exit status 130 (its
/// default action would kill the launcher and leave the bottle running).
#[tokio::test(flavor = "multi_thread")]
async fn sigquit_tears_the_bottle_down() {
    let Some(docker) = docker_or_skip("sigquit_tears_the_bottle_down").await else {
        return;
    };
    let image = standin_agent_image(&docker).await;
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let _cleanup = Cleanup {
        label: label.clone(),
    };
    let home = Home::new("---\n---\n", AGENT);
    let mut child = home
        .command(&[
            "start",
            "tester",
            "--yes",
            "--agent-image",
            &image,
            "--label",
            &label,
            "--",
            "sleep",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ran = running_agent(&docker, &label, &mut child).await.is_some();
    let _ = std::process::Command::new("kill")
        .arg("-QUIT")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(
        ran,
        "the agent never ran; launcher stderr:\n{}",
        stderr(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    let (containers, networks) = resources(&docker, &label).await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "left after SIGQUIT: {containers:?} {networks:?}"
    );
}
