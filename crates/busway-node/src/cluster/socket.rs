//! The group socket: adverts to and from the multicast group, probes and their replies by
//! unicast, all on one UDP socket bound to the group's port.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Opens the socket on `index` (the interface) with `source` as the adverts' source address.
/// TTL 1: adverts never leave the LAN.
pub(crate) fn open(group: SocketAddrV4, index: u32, source: Ipv4Addr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    // Any address, not the group's: probes and their replies arrive by unicast on this port.
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port()).into())?;
    s.join_multicast_v4_n(group.ip(), &InterfaceIndexOrAddress::Index(index))?;
    s.set_multicast_if_v4(&source)?;
    s.set_multicast_ttl_v4(1)?;
    UdpSocket::from_std(s.into())
}
