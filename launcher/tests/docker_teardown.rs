//! Teardown after a create call that never returned: `start` drops the launch when a signal
//! arrives, possibly while the engine is creating a network or a container. Names are recorded
//! before each call, so what the engine made in the meantime is still removed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use bollard::container::{Config, CreateContainerOptions};
use bollard::Docker;
use futures_util::FutureExt;
use launcher::docker::topology::{self, Created};
use launcher::manifest::catalog::Catalog;
use launcher::plan::{self, Options, Plan};
use std::collections::HashMap;
use support::*;

const AGENT: &str = "---\nbottle: test\n---\nYou are a test.\n";

/// A plan whose resources carry `label` (`key=value`).
fn plan(home: &Home, label: &str) -> Plan {
    let resolved = Catalog::discover(home.dir.path(), home.dir.path())
        .resolve("tester")
        .unwrap();
    let (k, v) = label.split_once('=').unwrap();
    let opts = Options {
        labels: vec![(k.to_owned(), v.to_owned())],
        ..Options::default()
    };
    plan::build(&resolved, &plan::new_id("tester"), "unused:image", &opts)
}

fn labels(label: &str) -> HashMap<String, String> {
    let (k, v) = label.split_once('=').unwrap();
    HashMap::from([(k.to_owned(), v.to_owned())])
}

async fn network_exists(docker: &Docker, name: &str) -> bool {
    docker.inspect_network::<String>(name, None).await.is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_dropped_in_its_first_create_call_leaves_nothing() {
    let Some(docker) =
        docker_or_skip("a_launch_dropped_in_its_first_create_call_leaves_nothing").await
    else {
        return;
    };
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let _cleanup = Cleanup {
        label: label.clone(),
    };
    let home = Home::new("---\n---\n", AGENT);
    let plan = plan(&home, &label);
    let mut created = Created::new(docker.clone());
    // Exactly one poll runs the launch up to its first create call (the internal network), which
    // is then dropped in flight, as `start`'s select! drops it on a signal. The engine still
    // makes the network; teardown must wait for that call and remove it.
    let cut = topology::launch(&docker, &plan, None, &[], &mut created).now_or_never();
    assert!(
        cut.is_none(),
        "the launch ended in one poll: {:?}",
        cut.map(|r| r.err())
    );
    let failures = created.teardown().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        !network_exists(&docker, &plan.networks.internal).await,
        "{} was left behind",
        plan.networks.internal
    );
    let (containers, networks) = resources(&docker, &label).await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "{containers:?} {networks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_waits_for_a_create_its_caller_dropped_and_spares_a_taken_name() {
    let Some(docker) =
        docker_or_skip("teardown_waits_for_a_create_its_caller_dropped_and_spares_a_taken_name")
            .await
    else {
        return;
    };
    let image = standin_agent_image(&docker).await;
    let run = unique("run");
    let label = format!("{TEST_LABEL}={run}");
    let _cleanup = Cleanup {
        label: label.clone(),
    };
    let create = |name: &str| {
        let opts = CreateContainerOptions {
            name: name.to_owned(),
            platform: None,
        };
        let config = Config {
            image: Some(image.clone()),
            cmd: Some(vec!["sleep".to_owned(), "60".to_owned()]),
            labels: Some(labels(&label)),
            ..Default::default()
        };
        move |d: Docker| async move { d.create_container(Some(opts), config).await }
    };
    let mut created = Created::new(docker.clone());

    // Dropped after one poll: the call goes on and the engine makes the container after its
    // caller is gone; teardown waits for the call, then removes the container by name.
    let cut = format!("cbt-{run}-cut");
    let dropped = created.container(&cut, create(&cut)).now_or_never();
    assert!(dropped.is_none(), "the create call finished in one poll");

    // Refused because the name is taken (409): someone else's container, never torn down.
    let taken = format!("cbt-{run}-taken");
    create(&taken)(docker.clone()).await.unwrap();
    let refused = created.container(&taken, create(&taken)).await;
    assert!(refused.is_err(), "a second container with one name");

    // Taken too, but the 409 comes back after its caller was dropped: still someone else's.
    let taken_late = format!("cbt-{run}-taken-late");
    create(&taken_late)(docker.clone()).await.unwrap();
    let dropped_taken = created
        .container(&taken_late, create(&taken_late))
        .now_or_never();
    assert!(
        dropped_taken.is_none(),
        "the create call finished in one poll"
    );

    // Recorded, never made (the call failed): a 404 at teardown, not a failure.
    let never = created
        .network(&format!("cbt-{run}-never"), |_| async {
            Err::<(), _>(bollard::errors::Error::RequestTimeoutError)
        })
        .await;
    assert!(never.is_err());

    let failures = created.teardown().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        inspect_if_present(&docker, &cut).await.is_none(),
        "{cut} was left behind"
    );
    assert!(
        inspect_if_present(&docker, &taken).await.is_some(),
        "teardown removed a container it had not created"
    );
    assert!(
        inspect_if_present(&docker, &taken_late).await.is_some(),
        "teardown removed a container whose 409 nobody read"
    );
}
