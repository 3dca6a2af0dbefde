//! The service address on the interface and its gratuitous ARP, each step logged: what both
//! backends' owners do with it, the multicast one (`driver`) and the etcd one (`etcd_owner`).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::garp::Garp;
use super::netlink::Netlink;

pub(super) struct Address {
    pub netlink: Netlink,
    pub garp: Garp,
    pub interface: String,
    pub service_ip: Ipv4Addr,
}

impl Address {
    /// Adds the address with `lifetime` (netlink, replacing one that is there).
    pub(super) fn add(&mut self, lifetime: Duration) {
        match self.netlink.set(lifetime) {
            Ok(()) => {
                tracing::info!(address = %self.service_ip, interface = %self.interface, "cluster: service address added")
            }
            Err(e) => {
                tracing::error!(address = %self.service_ip, error = %e, "cluster: cannot add the service address")
            }
        }
    }

    /// Renews the address's lifetime.
    pub(super) fn refresh(&mut self, lifetime: Duration) {
        if let Err(e) = self.netlink.set(lifetime) {
            tracing::error!(address = %self.service_ip, error = %e, "cluster: cannot renew the service address");
        }
    }

    /// Removes exactly the service address.
    pub(super) fn remove(&mut self) {
        match self.netlink.remove() {
            Ok(()) => {
                tracing::info!(address = %self.service_ip, interface = %self.interface, "cluster: service address removed")
            }
            Err(e) => {
                tracing::error!(address = %self.service_ip, error = %e, "cluster: cannot remove the service address")
            }
        }
    }

    /// One gratuitous ARP (request and reply).
    pub(super) fn arp(&self) {
        if let Err(e) = self.garp.send() {
            tracing::warn!(error = %e, "cluster: gratuitous ARP not sent");
        }
    }
}
