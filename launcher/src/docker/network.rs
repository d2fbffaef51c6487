//! The bottle's networks, created with their names recorded first (see `created`).

use std::collections::HashMap;

use bollard::network::CreateNetworkOptions;

use super::created::Created;
use super::DockerError;

pub async fn create_network(
    created: &mut Created,
    name: &str,
    internal: bool,
    labels: HashMap<String, String>,
) -> Result<(), DockerError> {
    let opts = CreateNetworkOptions {
        name: name.to_owned(),
        check_duplicate: true,
        driver: "bridge".to_owned(),
        internal,
        labels,
        ..Default::default()
    };
    created
        .network(name, move |d| async move { d.create_network(opts).await })
        .await
        .map_err(DockerError::api(format!("creating network {name}")))?;
    Ok(())
}
