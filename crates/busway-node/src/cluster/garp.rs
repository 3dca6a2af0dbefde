//! Gratuitous ARP for the service address: one request and one reply, broadcast from the
//! interface's MAC, so every neighbour (the gateway first) points its cache at this member.
//!
//! Sent on an AF_PACKET socket that never receives (protocol 0), so it costs no buffer.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{sendto, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};

const BROADCAST: [u8; 6] = [0xff; 6];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

/// The raw socket and what every frame holds.
pub(crate) struct Garp {
    fd: OwnedFd,
    link: LinkAddr,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl std::fmt::Debug for Garp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garp").finish_non_exhaustive()
    }
}

impl Garp {
    pub(crate) fn open(link: LinkAddr, mac: [u8; 6], ip: Ipv4Addr) -> nix::Result<Garp> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        Ok(Garp {
            fd,
            link,
            request: frame(mac, ip, 1),
            reply: frame(mac, ip, 2),
        })
    }

    /// Sends the request and the reply. Some hosts heed only one kind (RFC 5227 prefers
    /// requests; older stacks and switches learn from replies).
    pub(crate) fn send(&self) -> nix::Result<()> {
        let fd = self.fd.as_raw_fd();
        sendto(fd, &self.request, &self.link, MsgFlags::empty())?;
        sendto(fd, &self.reply, &self.link, MsgFlags::empty())?;
        Ok(())
    }
}

/// An Ethernet frame with an ARP packet whose sender and target addresses are both `ip`
/// (`op` 1 request, 2 reply), padded to Ethernet's 60-byte minimum.
pub(crate) fn frame(mac: [u8; 6], ip: Ipv4Addr, op: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETHERTYPE_ARP);
    // Ethernet, IPv4, 6-byte and 4-byte addresses.
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, op]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    // The target hardware address: unknown in a request, everyone in a reply.
    f.extend_from_slice(if op == 1 { &[0; 6] } else { &BROADCAST });
    f.extend_from_slice(&ip.octets());
    f.resize(60, 0);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_say_the_service_address_is_here() {
        let mac = [2, 0, 0, 0, 0, 7];
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        let req = frame(mac, ip, 1);
        assert_eq!(req.len(), 60);
        assert_eq!(&req[0..6], &BROADCAST);
        assert_eq!(&req[6..12], &mac);
        assert_eq!(&req[12..14], &ETHERTYPE_ARP);
        assert_eq!(req[21], 1, "a request");
        assert_eq!(&req[22..28], &mac, "sender MAC");
        assert_eq!(&req[28..32], &ip.octets(), "sender IP");
        assert_eq!(&req[32..38], &[0; 6]);
        assert_eq!(
            &req[38..42],
            &ip.octets(),
            "target IP: the same, gratuitous"
        );
        let rep = frame(mac, ip, 2);
        assert_eq!(rep[21], 2);
        assert_eq!(&rep[32..38], &BROADCAST);
    }
}
