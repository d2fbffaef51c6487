//! `[clients]`: which peers may open a connection to the proxy and routes listeners.
//!
//! Why: the routes listener attaches the operator's real token to whatever it forwards, so
//! anyone who can reach it holds that token's powers. Binding to one interface is not enough
//! when the proxy must listen on a network shared with others (the launcher's sidecar is on a
//! bridge the host and, with `--egress-network`, other containers also reach); a source-address
//! check is. The peer address is what the kernel reports for the accepted socket, so a client
//! cannot choose it the way it chooses a header.

use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Peers admitted by the listeners. Empty `allow`: every peer not in `deny`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientsConfig {
    pub allow: Vec<IpNet>,
    /// Wins over `allow` (carve the host's gateway address out of a bridge's subnet).
    pub deny: Vec<IpNet>,
}

/// Why a peer is refused, worded for the audit line: the peer, the entry that decided, and the
/// config key to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRefusal {
    /// In `deny[index]`.
    Denied {
        peer: IpAddr,
        index: usize,
        net: IpNet,
    },
    /// `allow` is not empty and no entry holds the peer.
    NotAllowed { peer: IpAddr },
}

impl std::fmt::Display for ClientRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientRefusal::Denied { peer, index, net } => write!(
                f,
                "client {peer} refused by clients.deny[{index}] ({net}); remove that entry from [clients] deny in the proxy config to admit it"
            ),
            ClientRefusal::NotAllowed { peer } => write!(
                f,
                "client {peer} is not in clients.allow; to admit it, add \"{}\" to [clients] allow in the proxy config",
                IpNet::from(*peer)
            ),
        }
    }
}

impl ClientsConfig {
    /// Whether `peer` may connect. An IPv4 peer seen on a dual-stack socket
    /// (`::ffff:a.b.c.d`) is matched as the IPv4 address it is.
    pub fn check(&self, peer: IpAddr) -> Result<(), ClientRefusal> {
        let peer = peer.to_canonical();
        if let Some((index, net)) = self
            .deny
            .iter()
            .enumerate()
            .find(|(_, n)| n.contains(&peer))
        {
            return Err(ClientRefusal::Denied {
                peer,
                index,
                net: *net,
            });
        }
        if self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&peer)) {
            Ok(())
        } else {
            Err(ClientRefusal::NotAllowed { peer })
        }
    }

    /// The `clients` part of `egress-proxy check`'s output.
    pub fn describe(&self) -> String {
        let mut out = String::from("clients (who may connect to the listeners; deny wins):\n");
        let list = |nets: &[IpNet]| {
            nets.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.allow.is_empty() {
            out.push_str("  allow: any peer (clients.allow is empty)\n");
        } else {
            let _ = writeln!(out, "  allow: {}", list(&self.allow));
        }
        if self.deny.is_empty() {
            out.push_str("  deny: (none)\n");
        } else {
            let _ = writeln!(out, "  deny: {}", list(&self.deny));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn deny_wins_and_empty_allow_admits_the_rest() {
        let c = ClientsConfig {
            allow: nets(&["172.20.0.0/16"]),
            deny: nets(&["172.20.0.1/32"]),
        };
        assert!(c.check("172.20.3.4".parse().unwrap()).is_ok());
        let gw = c.check("172.20.0.1".parse().unwrap()).unwrap_err();
        assert!(gw.to_string().contains("clients.deny[0]"), "{gw}");
        let other = c.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(other.to_string().contains("\"10.0.0.1/32\""), "{other}");
        let open = ClientsConfig {
            allow: Vec::new(),
            deny: nets(&["127.0.0.1/32"]),
        };
        assert!(open.check("127.0.0.2".parse().unwrap()).is_ok());
        assert!(open.check("127.0.0.1".parse().unwrap()).is_err());
        assert!(ClientsConfig::default()
            .check("203.0.113.9".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn a_mapped_ipv4_peer_matches_its_ipv4_entries() {
        let c = ClientsConfig {
            allow: nets(&["172.20.0.0/16"]),
            deny: nets(&["172.20.0.1/32"]),
        };
        assert!(c.check("::ffff:172.20.0.5".parse().unwrap()).is_ok());
        assert!(c.check("::ffff:172.20.0.1".parse().unwrap()).is_err());
    }
}
