//! Inside a real bottle with the stand-in agent: the allowlisted upstream (a container on the
//! egress side) answers through the proxy, everything else is refused or unreachable, and a
//! credential the proxy holds cannot be posted out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::collections::HashMap;

use bollard::container::{
    Config, CreateContainerOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use bollard::models::HostConfig;
use bollard::network::CreateNetworkOptions;
use bollard::Docker;
use futures_util::StreamExt;
use launcher::docker::rootfs::Rootfs;
use support::*;

const AGENT: &str = "---\nbottle: test\n---\nYou are a test.\n";

/// A TLS test upstream container answering as `upstream.test` and `other.test` on `network`.
struct Upstream {
    ip: String,
    container: String,
    ca: testkit::TestCa,
}

async fn start_upstream(docker: &Docker, network: &str, label: &str) -> Upstream {
    let image = upstream_image(docker).await;
    let ca = testkit::TestCa::new().unwrap();
    let (cert, key) = ca.issue(&["upstream.test", "other.test"]).unwrap();
    let (k, v) = label.split_once('=').unwrap();
    let name = unique("cbt-upstream");
    let config = Config {
        image: Some(image),
        cmd: Some(
            [
                "/usr/local/bin/test-upstream",
                "--listen",
                "0.0.0.0:8443",
                "--cert",
                "/certs/cert.pem",
                "--key",
                "/certs/key.pem",
                "--record",
                "/tmp/record.jsonl",
            ]
            .map(String::from)
            .to_vec(),
        ),
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
                name: name.clone(),
                platform: None,
            }),
            config,
        )
        .await
        .unwrap()
        .id;
    let mut files = Rootfs::new();
    files
        .copy_host_file(&cert, "/certs/cert.pem", 0o644)
        .unwrap();
    files.copy_host_file(&key, "/certs/key.pem", 0o644).unwrap();
    docker
        .upload_to_container(
            &id,
            Some(UploadToContainerOptions {
                path: "/".to_owned(),
                ..Default::default()
            }),
            files.to_tar().unwrap().into(),
        )
        .await
        .unwrap();
    docker.start_container::<String>(&id, None).await.unwrap();
    let info = docker.inspect_container(&id, None).await.unwrap();
    let ip = info.network_settings.unwrap().networks.unwrap()[network]
        .ip_address
        .clone()
        .unwrap();
    Upstream {
        ip,
        container: id,
        ca,
    }
}

async fn create_network(docker: &Docker, name: &str, label: &str) {
    let (k, v) = label.split_once('=').unwrap();
    docker
        .create_network(CreateNetworkOptions {
            name: name.to_owned(),
            driver: "bridge".to_owned(),
            labels: HashMap::from([(k.to_owned(), v.to_owned())]),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// What the upstream recorded (raw JSON lines).
async fn recorded(docker: &Docker, container: &str) -> String {
    let mut stream = docker.download_from_container(
        container,
        Some(DownloadFromContainerOptions {
            path: "/tmp/record.jsonl",
        }),
    );
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.unwrap());
    }
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut text = String::new();
    for entry in archive.entries().unwrap() {
        use std::io::Read;
        entry.unwrap().read_to_string(&mut text).unwrap();
    }
    text
}

fn marker(output: &str, key: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line in:\n{output}"))
        .to_owned()
}

/// One bottle whose egress network also holds the test upstream; runs `script` in the agent.
struct Run {
    text: String,
    record: String,
    token: String,
    sidecar: Sidecar,
    /// What `probe_from_outside` saw, when asked for.
    outside: Option<Outside>,
    _cleanup: Cleanup,
}

/// File the test drops into the agent once it is done probing from outside; an agent script
/// that starts with [`WAIT_FOR_GO`] waits for it (at most 60 s).
const GO_FILE: &str = "/cbt-go";
const WAIT_FOR_GO: &str =
    "i=0; while [ ! -e /cbt-go ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done";

async fn run_in_bottle(
    docker: &Docker,
    probe_outside: bool,
    script_for: impl Fn(&str, &str) -> String,
) -> Run {
    let agent_image = standin_agent_image(docker).await;
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let cleanup = Cleanup {
        label: label.clone(),
    };
    let net = format!("cbt-{run}-egress");
    create_network(docker, &net, &label).await;
    let up = start_upstream(docker, &net, &label).await;
    let token_ref = format!("CB_TEST_TOKEN_{}", run.replace('-', "_").to_uppercase());
    let token = format!("ghp_{}", unique("tokenvalue").replace('-', "x"));
    let bottle = format!(
        "---\negress:\n  allowlist:\n    - upstream.test:8443\ncred_proxy:\n  routes:\n    - path: /up/\n      upstream: https://upstream.test:8443\n      auth_scheme: Bearer\n      token_ref: {token_ref}\n---\n"
    );
    let home = Home::new(&bottle, AGENT);
    let ip = up.ip.clone();
    let script = format!(
        "q() {{ \"$@\" 2>/dev/null; echo \" rc=$?\"; }}\n{}\nsleep 2\n",
        script_for(&ip, &token)
    );
    let ca = up.ca.ca_pem_path().to_string_lossy().into_owned();
    let mut cmd = home.command(&[
        "start",
        "tester",
        "--yes",
        "--agent-image",
        &agent_image,
        "--label",
        &label,
        "--egress-network",
        &net,
        "--upstream-host",
        &format!("upstream.test={ip}"),
        "--upstream-host",
        &format!("other.test={ip}"),
        "--upstream-ca",
        &ca,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    cmd.env(&token_ref, &token);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut launcher = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    let sidecar = sidecar_while_running(docker, &label, &token_ref, pid, &mut launcher).await;
    let outside = if probe_outside {
        let seen = probe_from_outside(docker, &agent_image, &net, &label, &sidecar).await;
        release_agent(docker, &label, &mut launcher).await;
        Some(seen)
    } else {
        None
    };
    let out = launcher.await.unwrap();
    let text = stdout(&out);
    eprintln!("agent output:\n{text}\nlauncher stderr:\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&token), "token in launcher output");
    // The bottle removed its own resources; only the test's upstream and network remain.
    let (containers, networks) = resources(docker, &label).await;
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(networks, vec![net.clone()]);
    assert!(
        home.leftover_tmp().is_empty(),
        "CA files left: {:?}",
        home.leftover_tmp()
    );
    let record = recorded(docker, &up.container).await;
    Run {
        text,
        record,
        token,
        sidecar,
        outside,
        _cleanup: cleanup,
    }
}

/// What the test saw of the running sidecar.
struct Sidecar {
    id: String,
    /// Container name (Docker's DNS answers it on the egress network).
    name: String,
    /// Network name -> (the sidecar's address, the network's gateway).
    addresses: HashMap<String, (String, String)>,
    /// `docker inspect` as the engine returned it (raw JSON when the CLI is installed) plus the
    /// typed model bollard parsed, serialized.
    inspect: String,
    /// The route token file in the sidecar: (mode, uid, gid, contents).
    token_file: (u32, u64, u64, String),
}

/// Waits until this run's sidecar is running, then inspects it and reads its token file. A
/// launcher that exits first, or is still waiting at the deadline (then it is interrupted), fails
/// the test with its own output rather than a blind timeout.
async fn sidecar_while_running(
    docker: &Docker,
    label: &str,
    token_ref: &str,
    pid: u32,
    launcher: &mut tokio::task::JoinHandle<std::process::Output>,
) -> Sidecar {
    let deadline = std::time::Instant::now() + START_DEADLINE;
    let id = loop {
        let late = std::time::Instant::now() >= deadline;
        if late || launcher.is_finished() {
            if late {
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status();
            }
            let out = launcher.await.unwrap();
            panic!(
                "the sidecar was never seen running (deadline passed: {late}); launcher {:?}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                stdout(&out),
                stderr(&out)
            );
        }
        let (containers, _) = resources(docker, label).await;
        let mut found = None;
        for name in containers {
            let info = docker
                .inspect_container(name.trim_start_matches('/'), None)
                .await;
            let Ok(info) = info else { continue };
            let role = info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get("claude-bottle.role").cloned());
            let running = info.state.as_ref().and_then(|s| s.running) == Some(true);
            if role.as_deref() == Some("sidecar") && running {
                found = info.id.clone();
            }
        }
        if let Some(id) = found {
            break id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let typed = docker.inspect_container(&id, None).await.unwrap();
    let name = typed
        .name
        .clone()
        .unwrap()
        .trim_start_matches('/')
        .to_owned();
    let addresses = typed
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap()
        .into_iter()
        .map(|(net, e)| (net, (e.ip_address.unwrap(), e.gateway.unwrap())))
        .collect();
    let env = typed.config.as_ref().and_then(|c| c.env.clone()).unwrap();
    assert!(
        env.iter().any(|e| e.starts_with("RUST_LOG=")),
        "Config.Env not seen (check is vacuous): {env:?}"
    );
    let mut inspect = serde_json::to_string(&typed).unwrap();
    if let Ok(raw) = std::process::Command::new("docker")
        .args(["inspect", &id])
        .output()
    {
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        inspect.push_str(&String::from_utf8_lossy(&raw.stdout));
    }
    let path = format!("/run/bottle-secrets/{token_ref}");
    let mut stream = docker.download_from_container(
        &id,
        Some(DownloadFromContainerOptions {
            path: path.as_str(),
        }),
    );
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.unwrap());
    }
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let h = entry.header();
    let meta = (
        h.mode().unwrap() & 0o7777,
        h.uid().unwrap(),
        h.gid().unwrap(),
    );
    let mut contents = String::new();
    std::io::Read::read_to_string(&mut entry, &mut contents).unwrap();
    Sidecar {
        id,
        name,
        addresses,
        inspect,
        token_file: (meta.0, meta.1, meta.2, contents),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlisted_upstream_answers_and_every_bypass_fails() {
    let Some(docker) = docker_or_skip("allowlisted_upstream_answers_and_every_bypass_fails").await
    else {
        return;
    };
    let r = run_in_bottle(&docker, false, |ip, _| {
        format!(
            r#"
echo "allowed=$(q curl -sS -o /dev/null -w '%{{http_code}}' https://upstream.test:8443/echo)"
echo "denied=$(q curl -sS -o /dev/null -w '%{{http_connect}}' https://other.test:8443/echo)"
echo "---denied-body---"; curl -sS http://other.test:8443/echo; echo "---end---"
echo "by_ip=$(q curl -sS --noproxy '*' --connect-timeout 3 -k -o /dev/null -w '%{{http_code}}' https://{ip}:8443/echo)"
echo "noproxy=$(q curl -sS --noproxy '*' --connect-timeout 3 -k -o /dev/null -w '%{{http_code}}' https://upstream.test:8443/echo)"
echo "raw_tcp=$(q curl -sS --noproxy '*' --connect-timeout 3 telnet://{ip}:8443)"
echo "dns_upstream=$(q getent hosts upstream.test)"
echo "dns_external=$(q getent hosts example.com)"
echo "own_sidecar=$(q curl -sS --noproxy '*' --connect-timeout 3 -o /dev/null -w '%{{http_code}}' http://egress:3128/)"
"#
        )
    })
    .await;
    let text = &r.text;
    assert_eq!(marker(text, "allowed"), "200 rc=0");
    assert!(marker(text, "denied").starts_with("403"), "{text}");
    let body = text.split("---denied-body---").nth(1).unwrap_or_default();
    assert!(
        body.contains("other.test"),
        "403 body does not name the host: {body}"
    );
    assert!(marker(text, "by_ip").starts_with("000"), "{text}");
    assert!(marker(text, "noproxy").starts_with("000"), "{text}");
    assert!(!marker(text, "raw_tcp").ends_with("rc=0"), "{text}");
    assert!(!marker(text, "dns_upstream").ends_with("rc=0"), "{text}");
    assert!(!marker(text, "dns_external").ends_with("rc=0"), "{text}");
    // Positive control: the agent does reach its own sidecar directly.
    assert!(!marker(text, "own_sidecar").starts_with("000"), "{text}");
    assert!(r.record.contains("/echo"), "{}", r.record);
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_inject_and_held_tokens_cannot_be_sent_out() {
    let Some(docker) = docker_or_skip("routes_inject_and_held_tokens_cannot_be_sent_out").await
    else {
        return;
    };
    let r = run_in_bottle(&docker, false, |_, token| {
        format!(
            r#"
echo "route=$(q curl -sS -o /dev/null -w '%{{http_code}}' http://cred-proxy:9099/up/status/204)"
echo "exfil=$(q curl -sS -o /dev/null -w '%{{http_code}}' -X POST --data 'leak={token}' https://upstream.test:8443/echo)"
echo "exfil_query=$(q curl -sS -o /dev/null -w '%{{http_code}}' 'https://upstream.test:8443/echo?t={token}')"
"#
        )
    })
    .await;
    let (text, record, token) = (&r.text, &r.record, &r.token);
    assert_eq!(marker(text, "route"), "204 rc=0", "{text}");
    assert_eq!(marker(text, "exfil"), "403 rc=0", "{text}");
    assert_eq!(marker(text, "exfil_query"), "403 rc=0", "{text}");
    assert!(
        !record.contains(&format!("leak={token}")),
        "exfiltrated: {record}"
    );
    assert!(
        !record.contains(&format!("t={token}")),
        "exfiltrated: {record}"
    );
    assert!(
        record.contains(&format!("Bearer {token}")),
        "route did not inject: {record}"
    );
    // The route worked with a token the sidecar holds only as a private file: not in its
    // `docker inspect` (Config.Env or anywhere else), in its 0400 file owned by the proxy user.
    let sidecar = &r.sidecar;
    assert!(
        !sidecar.inspect.contains(token.as_str()),
        "the sidecar's docker inspect holds the token"
    );
    assert_eq!(
        sidecar.token_file,
        (0o400, 65534, 65534, token.clone()),
        "token file mode/owner/contents"
    );
}

/// What was seen from outside the bottle while it ran.
struct Outside {
    /// A container on the egress network only, dialing the sidecar by name.
    helper: String,
    /// The test process (on the Docker host) dialing the sidecar's two addresses.
    host: Vec<(String, testkit::CurlOutput)>,
    /// The sidecar's audit (its stdout) right after the probes.
    audit: Vec<serde_json::Value>,
    /// The internal network's gateway (the host's address on that bridge).
    internal_gateway: String,
}

/// Dials the sidecar's proxy and routes ports from a container on the egress network and from
/// the host, each with a path the upstream record must never show.
async fn probe_from_outside(
    docker: &Docker,
    image: &str,
    net: &str,
    label: &str,
    sidecar: &Sidecar,
) -> Outside {
    let name = &sidecar.name;
    let script = format!(
        r#"q() {{ "$@" 2>/dev/null; echo " rc=$?"; }}
echo "route=$(q curl -sS --noproxy '*' --connect-timeout 5 --max-time 10 -o /dev/null -w '%{{http_code}}' http://{name}:9099/up/outsider-route)"
echo "proxy=$(q curl -sS -k --connect-timeout 5 --max-time 10 -x http://{name}:3128 -o /dev/null -w '%{{http_code}}' https://upstream.test:8443/outsider-proxy)"
"#
    );
    let helper = containers::run_helper(docker, image, net, label, &script).await;
    let (internal, (internal_ip, internal_gateway)) = sidecar
        .addresses
        .iter()
        .find(|(n, _)| n.ends_with("-internal"))
        .unwrap();
    let (egress_ip, _) = &sidecar.addresses[net];
    eprintln!(
        "sidecar {name}: {internal} {internal_ip} (gateway {internal_gateway}), {net} {egress_ip}"
    );
    let mut host = Vec::new();
    for (what, url) in [
        (
            "internal_route",
            format!("http://{internal_ip}:9099/up/outsider-host-internal"),
        ),
        (
            "egress_route",
            format!("http://{egress_ip}:9099/up/outsider-host-egress"),
        ),
        ("internal_proxy", format!("http://{internal_ip}:3128/")),
    ] {
        let out = testkit::Curl::new(url)
            .max_time(std::time::Duration::from_secs(10))
            .run_async()
            .await
            .unwrap();
        host.push((what.to_owned(), out));
    }
    for (what, out) in &host {
        eprintln!(
            "host {what}: status {} curl exit {} {}",
            out.status,
            out.exit_code,
            out.stderr.trim()
        );
    }
    // The audit is written in batches (within 50 ms): wait for the five refusals to show.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let audit = loop {
        let lines: Vec<serde_json::Value> = containers::stdout_so_far(docker, &sidecar.id)
            .await
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let refusals = lines.iter().filter(|e| e["status"] == 0).count();
        if refusals >= 5 || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    Outside {
        helper,
        host,
        audit,
        internal_gateway: internal_gateway.clone(),
    }
}

/// Lets an agent waiting on [`WAIT_FOR_GO`] go on, once it runs.
async fn release_agent(
    docker: &Docker,
    label: &str,
    launcher: &mut tokio::task::JoinHandle<std::process::Output>,
) {
    let deadline = std::time::Instant::now() + START_DEADLINE;
    while std::time::Instant::now() < deadline && !launcher.is_finished() {
        let (names, _) = resources(docker, label).await;
        for name in names {
            let Some(info) = inspect_if_present(docker, &name).await else {
                continue;
            };
            let role = info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get("claude-bottle.role").cloned());
            let running = info.state.as_ref().and_then(|s| s.running) == Some(true);
            if role.as_deref() == Some("agent") && running {
                containers::drop_file(docker, &info.id.unwrap(), GO_FILE).await;
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the agent was never seen running (the launcher's output follows the test's failure)");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_bottle_can_use_the_sidecar() {
    let Some(docker) = docker_or_skip("only_the_bottle_can_use_the_sidecar").await else {
        return;
    };
    let r = run_in_bottle(&docker, true, |_, _| {
        format!(
            r#"{WAIT_FOR_GO}
echo "route=$(q curl -sS -o /dev/null -w '%{{http_code}}' http://cred-proxy:9099/up/status/204)"
echo "proxy=$(q curl -sS -o /dev/null -w '%{{http_code}}' https://upstream.test:8443/echo)"
"#
        )
    })
    .await;
    let o = r.outside.as_ref().unwrap();
    eprintln!("helper on the egress network:\n{}", o.helper);
    // Closed after accept (52 empty reply / 56 reset): the sidecar was there, and said nothing.
    // A dead or unreachable sidecar would be 6/7/28, so this cannot pass vacuously.
    let refused = |line: &str| {
        line.starts_with("000") && (line.ends_with("rc=52") || line.ends_with("rc=56"))
    };
    for key in ["route", "proxy"] {
        let line = marker(&o.helper, key);
        assert!(refused(&line), "egress-network {key}: {line}\n{}", o.helper);
    }
    for (what, out) in &o.host {
        assert!(
            out.status == 0 && matches!(out.exit_code, 52 | 56),
            "host {what}: status {} curl exit {}: {}",
            out.status,
            out.exit_code,
            out.stderr
        );
    }
    let denials: Vec<&serde_json::Value> = o
        .audit
        .iter()
        .filter(|e| e["decision"] == "deny" && e["status"] == 0)
        .collect();
    let from_gateway = denials.iter().any(|e| {
        e["client"]
            .as_str()
            .is_some_and(|c| c.starts_with(&format!("{}:", o.internal_gateway)))
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("clients.deny[0]"))
    });
    assert!(from_gateway, "no gateway refusal in the audit: {denials:?}");
    let not_allowed = denials
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not in clients.allow"))
        })
        .count();
    assert!(not_allowed >= 3, "egress-side refusals: {denials:?}");
    // Nothing from outside reached the upstream; the agent, after all that, still can.
    assert!(!r.record.contains("outsider"), "{}", r.record);
    assert_eq!(marker(&r.text, "route"), "204 rc=0", "{}", r.text);
    assert_eq!(marker(&r.text, "proxy"), "200 rc=0", "{}", r.text);
    assert!(
        r.record.contains(&format!("Bearer {}", r.token)),
        "{}",
        r.record
    );
}
