//! What the driver needs to know of `[cluster] interface`: its index, its MAC, its own IPv4
//! address (the source of adverts and probes), and whether the service address is on it.

use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::LinkAddr;

/// One interface as the kernel reports it now.
#[derive(Clone, Debug)]
pub(crate) struct Interface {
    pub index: u32,
    pub mac: [u8; 6],
    /// The link-layer address gratuitous ARP is sent to (this interface, by index).
    pub link: LinkAddr,
    /// Its IPv4 addresses other than the service address, first one first.
    pub own: Vec<Ipv4Addr>,
    /// Whether the service address is on it.
    pub has_service_ip: bool,
}

/// Looks `name` up, telling `service_ip` apart from the interface's own addresses.
pub(crate) fn lookup(name: &str, service_ip: Ipv4Addr) -> Result<Interface, String> {
    let addrs = getifaddrs().map_err(|e| format!("cannot list interfaces: {e}"))?;
    let mut link = None;
    let mut own = Vec::new();
    let mut has_service_ip = false;
    for a in addrs.filter(|a| a.interface_name == name) {
        let Some(addr) = a.address else { continue };
        if let Some(l) = addr.as_link_addr() {
            link = Some(*l);
        } else if let Some(v4) = addr.as_sockaddr_in() {
            let ip = v4.ip();
            if ip == service_ip {
                has_service_ip = true;
            } else {
                own.push(ip);
            }
        }
    }
    let link = link.ok_or_else(|| format!("interface {name} does not exist"))?;
    let mac = link
        .addr()
        .ok_or_else(|| format!("interface {name} has no Ethernet address"))?;
    Ok(Interface {
        index: link.ifindex() as u32,
        mac,
        link,
        own,
        has_service_ip,
    })
}

/// Whether the service address is on `name` now.
pub(crate) fn has_address(name: &str, ip: Ipv4Addr) -> bool {
    lookup(name, ip).is_ok_and(|i| i.has_service_ip)
}
