//! The bottle's networks: creating them (recorded first, see `created`), and learning the
//! internal network's addresses for the sidecar's `[clients]`.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::network::{CreateNetworkOptions, InspectNetworkOptions};
use bollard::Docker;
use ipnet::IpNet;

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

/// Who may use the sidecar's listeners: `(allow, deny)` = the subnets of network `name` and
/// their gateways (single addresses).
///
/// Why the gateways: Docker gives even an `--internal` bridge a gateway address, and puts it on
/// the host's bridge interface, so a local user on the host connects from inside the subnet.
/// A network without any subnet fails the launch: the sidecar would otherwise admit everyone.
pub async fn clients(docker: &Docker, name: &str) -> Result<(Vec<IpNet>, Vec<IpNet>), DockerError> {
    let info = docker
        .inspect_network(name, None::<InspectNetworkOptions<String>>)
        .await
        .map_err(DockerError::api(format!("inspecting network {name}")))?;
    let configs = info.ipam.and_then(|i| i.config).unwrap_or_default();
    let pairs: Vec<(Option<String>, Option<String>)> =
        configs.into_iter().map(|c| (c.subnet, c.gateway)).collect();
    from_ipam(&pairs).map_err(|why| DockerError::Other(format!("network {name}: {why}")))
}

/// The `(allow, deny)` lists from IPAM `(subnet, gateway)` pairs. A gateway may carry a prefix
/// (`172.25.0.1/16`, as some engines report it); the address alone is denied.
pub fn from_ipam(
    pairs: &[(Option<String>, Option<String>)],
) -> Result<(Vec<IpNet>, Vec<IpNet>), String> {
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    for (subnet, gateway) in pairs {
        let Some(subnet) = subnet.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let net: IpNet = subnet
            .parse()
            .map_err(|_| format!("the engine reports an unreadable subnet {subnet:?}"))?;
        allow.push(net.trunc());
        let gw = match gateway.as_deref().filter(|g| !g.is_empty()) {
            Some(gw) => {
                let addr = gw.split_once('/').map_or(gw, |(a, _)| a);
                addr.parse::<IpAddr>()
                    .map_err(|_| format!("the engine reports an unreadable gateway {gw:?}"))?
            }
            // An empty gateway in the inspect output does not mean the host has no address on
            // the bridge (docker/for-linux#568): deny the first host address, the one Docker
            // gives the bridge by default. Fail closed, never open.
            None => first_host(&net).ok_or_else(|| {
                format!("the engine reports no gateway for {net} and it has no host address")
            })?,
        };
        deny.push(IpNet::from(gw));
    }
    if allow.is_empty() {
        return Err(
            "the engine reports no subnet, so the sidecar could not be limited to the bottle"
                .to_owned(),
        );
    }
    Ok((allow, deny))
}

/// The subnet's first address after the network address (`172.20.0.1` in `172.20.0.0/16`,
/// `fd00::1` in `fd00::/64`), where Docker puts the bridge unless told otherwise.
fn first_host(net: &IpNet) -> Option<IpAddr> {
    let ip = match net.network() {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).checked_add(1)?.into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).checked_add(1)?.into()),
    };
    net.contains(&ip).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(s: &str, g: &str) -> (Option<String>, Option<String>) {
        (Some(s.to_owned()), Some(g.to_owned()))
    }

    #[test]
    fn subnets_are_allowed_and_gateways_denied() {
        let (allow, deny) = from_ipam(&[
            pair("172.20.0.0/16", "172.20.0.1"),
            pair("fd00:1::/64", "fd00:1::1/64"),
        ])
        .unwrap();
        let s = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(s(&allow), ["172.20.0.0/16", "fd00:1::/64"]);
        assert_eq!(s(&deny), ["172.20.0.1/32", "fd00:1::1/128"]);
    }

    #[test]
    fn no_subnet_or_garbage_fails_closed() {
        assert!(from_ipam(&[]).is_err());
        assert!(from_ipam(&[(None, Some("172.20.0.1".into()))]).is_err());
        assert!(from_ipam(&[pair("not-a-net", "172.20.0.1")]).is_err());
        assert!(from_ipam(&[pair("172.20.0.0/16", "gw")]).is_err());
        // No gateway reported: the bridge's default address is denied anyway.
        let (_, deny) = from_ipam(&[(Some("172.20.0.0/16".into()), None)]).unwrap();
        assert_eq!(deny, ["172.20.0.1/32".parse::<IpNet>().unwrap()]);
        let (_, deny) = from_ipam(&[pair("fd00:2::/64", "")]).unwrap();
        assert_eq!(deny, ["fd00:2::1/128".parse::<IpNet>().unwrap()]);
    }
}
