//! Runs the agent container to completion: streams its output, forwards the terminal when
//! interactive, and returns its exit code.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use bollard::container::{
    AttachContainerOptions, LogOutput, ResizeContainerTtyOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::DockerError;

/// Starts the (already created) agent and waits for it. Output is attached before the start so
/// nothing the command prints is lost.
pub async fn run_agent(docker: &Docker, id: &str, interactive: bool) -> Result<i64, DockerError> {
    let attach = AttachContainerOptions::<String> {
        stdin: Some(interactive),
        stdout: Some(true),
        stderr: Some(true),
        stream: Some(true),
        logs: Some(true),
        detach_keys: None,
    };
    let attached = docker
        .attach_container(id, Some(attach))
        .await
        .map_err(DockerError::api("attaching to the agent"))?;
    let mut output = attached.output;
    let mut input = attached.input;
    let _raw = if interactive {
        RawTerminal::enter()
    } else {
        None
    };
    docker
        .start_container::<String>(id, None)
        .await
        .map_err(DockerError::api("starting the agent"))?;
    if interactive {
        resize(docker, id).await;
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut input).await;
        });
        let docker = docker.clone();
        let id_for_resize = id.to_owned();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut winch) = signal(SignalKind::window_change()) {
                while winch.recv().await.is_some() {
                    resize(&docker, &id_for_resize).await;
                }
            }
        });
    } else {
        drop(input);
    }
    let pump = async {
        let mut stdout = tokio::io::stdout();
        let mut stderr = tokio::io::stderr();
        while let Some(Ok(chunk)) = output.next().await {
            let _ = match chunk {
                LogOutput::StdErr { message } => stderr.write_all(&message).await,
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.write_all(&message).await
                }
                LogOutput::StdIn { .. } => Ok(()),
            };
            let _ = stdout.flush().await;
        }
    };
    let wait = async {
        let mut waiting = docker.wait_container(id, None::<WaitContainerOptions<String>>);
        match waiting.next().await {
            Some(Ok(exit)) => Ok(exit.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(DockerError::Api {
                context: "waiting for the agent".to_owned(),
                source: e,
            }),
            None => Err(DockerError::Other(
                "the agent wait stream ended early".to_owned(),
            )),
        }
    };
    let (_, code) = tokio::join!(pump, wait);
    code
}

async fn resize(docker: &Docker, id: &str) {
    let stdout = std::io::stdout();
    if let Ok(size) = rustix::termios::tcgetwinsize(stdout.as_fd()) {
        let opts = ResizeContainerTtyOptions {
            width: size.ws_col,
            height: size.ws_row,
        };
        let _ = docker.resize_container_tty(id, opts).await;
    }
}

/// The host terminal in raw mode for as long as this lives (keys go to the agent unprocessed).
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = rustix::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw)
            .ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = rustix::termios::tcsetattr(
            stdin.as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
