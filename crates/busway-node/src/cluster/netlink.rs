//! The service address through rtnetlink (RTM_NEWADDR, RTM_DELADDR), with a short lifetime.
//!
//! Calls are synchronous: the kernel answers an address change in microseconds, and doing it
//! in the driver's own task keeps the order the state machine asked for (add, then ARP) without
//! a queue between them.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, CacheInfo};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The service address on one interface.
pub(crate) struct Netlink {
    sock: Socket,
    seq: u32,
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("index", &self.index)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    pub(crate) fn open(index: u32, ip: Ipv4Addr, prefix_len: u8) -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            sock,
            seq: 0,
            index,
            ip,
            prefix_len,
        })
    }

    /// Adds the address, or renews its lifetime if it is there: valid and preferred for
    /// `lifetime`, so a killed owner's address lapses on its own.
    pub(crate) fn set(&mut self, lifetime: Duration) -> io::Result<()> {
        let secs = lifetime.as_secs().max(1) as u32;
        let mut msg = self.message();
        let mut info = CacheInfo::default();
        info.ifa_preferred = secs;
        info.ifa_valid = secs;
        msg.attributes.push(AddressAttribute::CacheInfo(info));
        self.call(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Removes exactly the service address; one that is already gone is not an error.
    pub(crate) fn remove(&mut self) -> io::Result<()> {
        let msg = self.message();
        match self.call(
            RouteNetlinkMessage::DelAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Err(e) if e.raw_os_error() == Some(libc_eaddrnotavail()) => Ok(()),
            other => other,
        }
    }

    fn message(&self) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = self.prefix_len;
        msg.header.index = self.index;
        let ip = IpAddr::V4(self.ip);
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        msg
    }

    /// Sends one request and waits for its acknowledgement.
    fn call(&mut self, inner: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(inner));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        // Bounded: the kernel acknowledges a request at once; anything else on this socket
        // (nothing subscribes to groups) is skipped.
        for _ in 0..16 {
            let (reply, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while at < reply.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[at..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    if let NetlinkPayload::Error(e) = m.payload {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "netlink did not acknowledge the request",
        ))
    }
}

/// `EADDRNOTAVAIL`, what RTM_DELADDR answers for an address that is not there.
fn libc_eaddrnotavail() -> i32 {
    nix::errno::Errno::EADDRNOTAVAIL as i32
}
