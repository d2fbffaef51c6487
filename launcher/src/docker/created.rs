//! What one bottle created, so a failure half-way, a signal or the agent's exit removes exactly
//! what exists.
//!
//! Why the care: `start` drops the launch future when a signal arrives, which can be while a
//! create call is in flight. The engine may then make the resource anyway — it may even get to
//! the request after teardown has removed everything else. So each name is recorded *before*
//! its create call, the call runs in a task of its own that a dropped caller does not cancel,
//! and teardown first waits for every such call to return, then removes by name (names are
//! deterministic, from the bottle id). A name whose resource never came to be is a 404 at
//! teardown, which counts as success.

use std::future::Future;

use bollard::Docker;
use tokio::task::JoinHandle;

use super::is_not_found;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Network,
    Container,
}

/// Resources a bottle created (by name), in creation order; torn down in reverse.
pub struct Created {
    docker: Docker,
    containers: Vec<String>,
    networks: Vec<String>,
    /// Create calls started, possibly still running after their caller was dropped.
    calls: Vec<JoinHandle<()>>,
}

impl Created {
    pub fn new(docker: Docker) -> Self {
        Self {
            docker,
            containers: Vec::new(),
            networks: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// Records network `name`, then runs `create` (the call that makes it, given a client).
    pub async fn network<T, F>(
        &mut self,
        name: &str,
        create: impl FnOnce(Docker) -> F,
    ) -> Result<T, bollard::errors::Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    {
        self.record(Kind::Network, name, create).await
    }

    /// Records container `name`, then runs `create` (the call that makes it, given a client).
    pub async fn container<T, F>(
        &mut self,
        name: &str,
        create: impl FnOnce(Docker) -> F,
    ) -> Result<T, bollard::errors::Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    {
        self.record(Kind::Container, name, create).await
    }

    async fn record<T, F>(
        &mut self,
        kind: Kind,
        name: &str,
        create: impl FnOnce(Docker) -> F,
    ) -> Result<T, bollard::errors::Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    {
        self.names(kind).push(name.to_owned());
        let result = self.call(create).await;
        forget_if_taken(self.names(kind), name, &result);
        result
    }

    fn names(&mut self, kind: Kind) -> &mut Vec<String> {
        match kind {
            Kind::Network => &mut self.networks,
            Kind::Container => &mut self.containers,
        }
    }

    /// Runs one create call in its own task (kept in `calls` for teardown to wait on).
    async fn call<T, F>(
        &mut self,
        create: impl FnOnce(Docker) -> F,
    ) -> Result<T, bollard::errors::Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    {
        self.calls.retain(|c| !c.is_finished());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let call = create(self.docker.clone());
        self.calls.push(tokio::spawn(async move {
            let _ = tx.send(call.await);
        }));
        match rx.await {
            Ok(result) => result,
            // The task ended without an answer: it panicked (bollard's own bug).
            Err(_) => Err(bollard::errors::Error::RequestTimeoutError),
        }
    }

    /// Waits for every create call still running, then removes everything recorded
    /// (force-removing containers first). Returns the failures; a resource already gone (or
    /// never made) is not a failure.
    pub async fn teardown(&mut self) -> Vec<String> {
        for call in self.calls.drain(..) {
            let _ = call.await;
        }
        let mut failures = Vec::new();
        for name in self.containers.drain(..).rev() {
            let opts = bollard::container::RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            if let Err(e) = self.docker.remove_container(&name, Some(opts)).await {
                if !is_not_found(&e) {
                    failures.push(format!("container {name}: {e}"));
                }
            }
        }
        for name in self.networks.drain(..).rev() {
            if let Err(e) = self.docker.remove_network(&name).await {
                if !is_not_found(&e) {
                    failures.push(format!("network {name}: {e}"));
                }
            }
        }
        failures
    }
}

/// Takes `name` back off `list` when the engine answered 409: the name belongs to something
/// that existed before, which is not ours to remove. (An answer nobody waited for any more is
/// not seen here, and teardown removes by name.)
fn forget_if_taken<T>(
    list: &mut Vec<String>,
    name: &str,
    result: &Result<T, bollard::errors::Error>,
) {
    if let Err(bollard::errors::Error::DockerResponseServerError {
        status_code: 409, ..
    }) = result
    {
        if let Some(i) = list.iter().rposition(|n| n == name) {
            list.remove(i);
        }
    }
}
