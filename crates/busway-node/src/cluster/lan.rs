//! `lan_balance = true` (CONTRACT section 7): the owner of the service address spreads the
//! sessions that arrive at it over every member, itself included, by a hash of the client's
//! address and port ([`busway_cluster::Cluster::pick`], rendezvous hashing over the live
//! members' names), and carries the others' over the bus to the member's first bus URL.
//!
//! Only sessions whose client reached the service address are balanced: those arriving at a
//! member's own address, or carried here by the owner over the bus, are served where they
//! land, so a session is balanced once and never bounces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use busway_net::{Conn, EndpointAddr};

use super::{ClusterMember, NodeCluster};

/// What this member needs to balance: set only with `lan_balance = true`.
#[derive(Debug)]
pub(crate) struct LanBalance {
    pub service_ip: Ipv4Addr,
}

impl NodeCluster {
    /// The bus endpoint of the member that serves `client`, or `None` to serve it here: this
    /// node is the pick, `lan_balance` is off, the client did not come to the service address,
    /// or the member's bus URL is not a TCP address.
    pub(crate) fn lan_member(&self, conn: &Conn, client: &str) -> Option<EndpointAddr> {
        let lan = self.lan.as_ref()?;
        let Conn::Tcp(s) = conn else { return None };
        if s.local_addr().ok()?.ip() != IpAddr::V4(lan.service_ip) {
            return None;
        }
        let client: SocketAddr = client.parse().ok()?;
        let pick = self.lock().pick(client)?;
        if pick.is_self {
            return None;
        }
        bus_endpoint(&pick.bus_address)
    }

    /// Every other live member's bus endpoint, kept among the node's pools while
    /// `lan_balance` may pick it.
    pub(crate) fn lan_endpoints(&self) -> Vec<EndpointAddr> {
        if self.lan.is_none() {
            return Vec::new();
        }
        let view = self.view();
        view.members
            .iter()
            .filter(|m| m.name != view.self_name)
            .filter_map(|m| bus_endpoint(&m.address))
            .collect()
    }
}

/// `lan_balance` runs on the multicast backend's membership (the configuration refuses it with
/// `backend = "etcd"`): a lease member balances nothing.
impl ClusterMember {
    pub(crate) fn lan_member(&self, conn: &Conn, client: &str) -> Option<EndpointAddr> {
        match self {
            ClusterMember::Adverts(c) => c.lan_member(conn, client),
            ClusterMember::Lease(_) => None,
        }
    }

    pub(crate) fn lan_endpoints(&self) -> Vec<EndpointAddr> {
        match self {
            ClusterMember::Adverts(c) => c.lan_endpoints(),
            ClusterMember::Lease(_) => Vec::new(),
        }
    }
}

/// `tcp://IP:PORT` as an endpoint; anything else (a Unix socket cannot be another member's)
/// is `None`.
fn bus_endpoint(url: &str) -> Option<EndpointAddr> {
    let a: SocketAddr = url.strip_prefix("tcp://")?.parse().ok()?;
    Some(EndpointAddr::Tcp(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_bus_urls_are_members_endpoints() {
        assert_eq!(
            bus_endpoint("tcp://198.18.0.11:7100"),
            Some(EndpointAddr::Tcp("198.18.0.11:7100".parse().unwrap()))
        );
        assert_eq!(bus_endpoint("unix:///run/busway.sock"), None);
        assert_eq!(bus_endpoint("tcp://host:7100"), None);
        assert_eq!(bus_endpoint(""), None);
    }
}
