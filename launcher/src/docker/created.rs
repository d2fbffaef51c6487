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

/// How long teardown waits for create calls still running after their caller was dropped.
const CREATE_CALL_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

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
    /// Create calls started, possibly still running after their caller was dropped; each
    /// task ends with whether the engine said the name was taken (409).
    calls: Vec<(Kind, String, JoinHandle<bool>)>,
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
        let result = self.call(kind, name, create).await;
        if is_taken(&result) {
            forget(self.names(kind), name);
        }
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
        kind: Kind,
        name: &str,
        create: impl FnOnce(Docker) -> F,
    ) -> Result<T, bollard::errors::Error>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    {
        self.calls.retain(|(_, _, c)| !c.is_finished());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let call = create(self.docker.clone());
        let task = tokio::spawn(async move {
            let result = call.await;
            let taken = is_taken(&result);
            let _ = tx.send(result);
            taken
        });
        self.calls.push((kind, name.to_owned(), task));
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
        let mut failures = Vec::new();
        // A create call cut off by a signal normally answers in well under a second; a hung
        // engine must not hold the user's Ctrl-C for bollard's whole API timeout. Past the
        // bound, removal goes ahead (`claude-bottle stop` sweeps by label what comes later).
        let calls: Vec<_> = self.calls.drain(..).collect();
        let deadline = tokio::time::Instant::now() + CREATE_CALL_WAIT;
        let mut slow = false;
        for (kind, name, call) in calls {
            match tokio::time::timeout_at(deadline, call).await {
                // A 409 nobody waited for: the name is someone else's, not ours to remove.
                Ok(Ok(true)) => forget(self.names(kind), &name),
                Ok(_) => {}
                Err(_) => slow = true,
            }
        }
        if slow {
            failures.push(format!(
                "a create call was still running after {} s; `claude-bottle stop <bottle id>` removes anything it made later",
                CREATE_CALL_WAIT.as_secs()
            ));
        }
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

/// The engine answered 409: the name belongs to something that existed before, which is not
/// ours to remove.
fn is_taken<T>(result: &Result<T, bollard::errors::Error>) -> bool {
    matches!(
        result,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        })
    )
}

/// Takes `name` back off `list` (see `is_taken`).
fn forget(list: &mut Vec<String>, name: &str) {
    if let Some(i) = list.iter().rposition(|n| n == name) {
        list.remove(i);
    }
}
