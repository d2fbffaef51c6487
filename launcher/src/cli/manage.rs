//! `ps`, `stop`, `logs`, `doctor`.

use anyhow::Result;
use bollard::container::LogOutput;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use launcher::docker::{self, images, manage};
use launcher::plan::DEFAULT_AGENT_IMAGE;

pub async fn ps(json: bool) -> Result<u8> {
    let docker = docker::connect().await?;
    let rows = manage::list(&docker).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    println!(
        "{:<32} {:<20} {:<10} {:<10}",
        "BOTTLE", "AGENT", "SIDECAR", "AGENT-CTR"
    );
    for row in rows {
        let state = |role: &str| {
            row.containers
                .get(role)
                .cloned()
                .unwrap_or_else(|| "-".to_owned())
        };
        println!(
            "{:<32} {:<20} {:<10} {:<10}",
            row.id,
            row.agent,
            state("sidecar"),
            state("agent")
        );
    }
    Ok(0)
}

pub async fn stop(name: Option<String>) -> Result<u8> {
    let docker = docker::connect().await?;
    let removed = manage::stop(&docker, name.as_deref()).await?;
    if removed.is_empty() {
        eprintln!("nothing to remove");
        return Ok(if name.is_some() { 1 } else { 0 });
    }
    for item in removed {
        eprintln!("removed {item}");
    }
    Ok(0)
}

pub async fn logs(name: &str, follow: bool) -> Result<u8> {
    let docker = docker::connect().await?;
    let stream = manage::audit_stream(&docker, name, follow).await?;
    futures_util::pin_mut!(stream);
    let mut out = tokio::io::stdout();
    while let Some(item) = stream.next().await {
        match item? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                out.write_all(&message).await?;
                out.flush().await?;
            }
            LogOutput::StdErr { .. } | LogOutput::StdIn { .. } => {}
        }
    }
    Ok(0)
}

pub async fn doctor() -> Result<u8> {
    let mut ok = true;
    let proxy = images::find_proxy_binary();
    match &proxy {
        Ok(path) => println!("ok    proxy binary: {}", path.display()),
        Err(e) => {
            ok = false;
            println!("FAIL  proxy binary: {e}");
        }
    }
    let docker = match docker::connect().await {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL  docker: {e}");
            return Ok(1);
        }
    };
    let mut wanted = vec![DEFAULT_AGENT_IMAGE.to_owned()];
    if let Ok(path) = &proxy {
        if let Ok(tag) = images::sidecar_tag(path) {
            wanted.push(tag);
        }
    }
    for check in manage::doctor(&docker, &wanted).await {
        let is_sidecar = check.what.contains(images::SIDECAR_REPO);
        let mark = match (check.ok, is_sidecar) {
            (true, _) => "ok   ",
            // The sidecar image is assembled on first `start`; missing is fine.
            (false, true) => "note ",
            (false, false) => {
                ok = false;
                "FAIL "
            }
        };
        let detail = if !check.ok && is_sidecar {
            "not assembled yet (built from the proxy binary on the next start)".to_owned()
        } else if !check.ok && check.what.contains(DEFAULT_AGENT_IMAGE) {
            "missing: build it from images/agent/Dockerfile (see docs/LAUNCHER.md) or pass --agent-image".to_owned()
        } else {
            check.detail
        };
        println!("{mark} {}: {detail}", check.what);
    }
    Ok(if ok { 0 } else { 1 })
}
