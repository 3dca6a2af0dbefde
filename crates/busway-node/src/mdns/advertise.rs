//! What a cluster member with `mdns = true` advertises (CONTRACT section 7): the instance
//! `NAME._busway._tcp.local` (a PTR from the service type to it), its SRV with the bus port and
//! the host `NAME.local`, and that host's A record with the bus address.
//!
//! The bus address is that of the node's first TCP bus listener (the bound URLs in the order
//! the cluster's adverts use); a listener on `0.0.0.0` or `[::]` is advertised with the
//! cluster interface's own IPv4 address, since an A record must name one a peer can dial.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mdns_sd::ServiceInfo;

/// The service type members advertise, as the mDNS library spells it (with the root dot).
pub(super) const SERVICE_TYPE: &str = "_busway._tcp.local.";

/// The longest DNS label: a host label made from a longer node name is cut to it.
const MAX_LABEL: usize = 63;

/// The address and port of the first TCP bus URL, `0.0.0.0` (or `[::]`) replaced by
/// `own` (the cluster interface's own address). `None` when there is no TCP bus listener, or
/// only IPv6 ones (an A record holds IPv4).
pub(super) fn bus_address(bus_urls: &[String], own: Option<Ipv4Addr>) -> Option<(Ipv4Addr, u16)> {
    bus_urls.iter().find_map(|u| {
        let a: SocketAddr = u.strip_prefix("tcp://")?.parse().ok()?;
        let ip = match a.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => ip,
            ip if ip.is_unspecified() => own?,
            _ => return None,
        };
        Some((ip, a.port()))
    })
}

/// The host name of the A record: the node name as one DNS label (dots and underscores,
/// which a node name may hold and a host label may not, become hyphens).
pub(super) fn host_name(node: &str) -> String {
    let label: String = node
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_LABEL)
        .collect();
    format!("{label}.local.")
}

/// The records of this member: the instance named after the node, at `addr`.
pub(super) fn service_info(node: &str, addr: (Ipv4Addr, u16)) -> Result<ServiceInfo, String> {
    let (ip, port) = addr;
    let no_txt: &[(&str, &str)] = &[];
    ServiceInfo::new(
        SERVICE_TYPE,
        node,
        &host_name(node),
        IpAddr::V4(ip),
        port,
        no_txt,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

    #[test]
    fn the_first_tcp_listener_is_advertised() {
        let urls = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            bus_address(
                &urls(&["unix:///run/b.sock", "tcp://198.18.0.12:7100"]),
                None
            ),
            Some((Ipv4Addr::new(198, 18, 0, 12), 7100))
        );
        // Every address: the interface's own one stands for it.
        assert_eq!(
            bus_address(&urls(&["tcp://0.0.0.0:7100"]), Some(OWN)),
            Some((OWN, 7100))
        );
        assert_eq!(
            bus_address(&urls(&["tcp://[::]:7100"]), Some(OWN)),
            Some((OWN, 7100))
        );
        assert_eq!(bus_address(&urls(&["tcp://0.0.0.0:7100"]), None), None);
        assert_eq!(
            bus_address(&urls(&["tcp://[fd00::1]:7100"]), Some(OWN)),
            None
        );
        assert_eq!(bus_address(&urls(&["unix:///run/b.sock"]), Some(OWN)), None);
    }

    #[test]
    fn host_names_are_one_label() {
        assert_eq!(host_name("m1"), "m1.local.");
        assert_eq!(host_name("edge.eu_1"), "edge-eu-1.local.");
        assert_eq!(
            host_name(&"n".repeat(64)),
            format!("{}.local.", "n".repeat(63))
        );
    }

    #[test]
    fn the_records_name_the_node() {
        let info = service_info("m1", (OWN, 7100)).unwrap();
        assert_eq!(info.get_fullname(), "m1._busway._tcp.local.");
        assert_eq!(info.get_hostname(), "m1.local.");
        assert_eq!(info.get_port(), 7100);
        assert_eq!(
            info.get_addresses_v4().into_iter().collect::<Vec<_>>(),
            [&OWN]
        );
    }
}
