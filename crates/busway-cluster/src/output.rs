//! What the state machine asks of its driver.

use std::net::SocketAddr;

use crate::metrics::RejectReason;

/// One decision or datagram for the driver, taken with [`crate::Cluster::poll_output`] after
/// every input, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Add the service address to the interface (netlink, with a short lifetime; see
    /// docs/CLUSTER.md), then listeners bound with IP_FREEBIND start receiving its traffic.
    AddAddress,
    /// Renew the address's lifetime: the owner is still alive. A process killed with the
    /// address thus loses it within the lifetime instead of answering ARP for ever.
    RefreshAddress,
    /// Remove the service address now: another member owns it, or this one is leaving, or it
    /// is a leftover at start. Never asked for any other address.
    RemoveAddress,
    /// Send one gratuitous ARP for the service address (bursts are timed here).
    SendGratuitousArp,
    /// Send the datagram to the group (TTL 1).
    Multicast(Vec<u8>),
    /// Send the datagram to one member.
    Send { to: SocketAddr, datagram: Vec<u8> },
    /// The history changed: persist [`crate::Cluster::snapshot`] in `state_dir`.
    HistoryChanged,
    /// A datagram was ignored; at most one of these a second per reason, `suppressed` saying how
    /// many more were ignored since the last one (all of them are counted in the metrics).
    Rejected {
        reason: RejectReason,
        from: SocketAddr,
        detail: String,
        suppressed: u64,
    },
    /// Something worth a log line.
    Notice(Notice),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// No cluster answered: this node founded `era`.
    Founded {
        era: u32,
    },
    /// This node took the address.
    Owner {
        reason: TakeoverReason,
    },
    /// This node gave the address up to a better-ranked owner.
    Yielded {
        to: String,
    },
    MemberUp {
        node: String,
        incarnation: u32,
    },
    /// A member is gone: `left` when it said so, else its death was confirmed by probes.
    MemberDown {
        node: String,
        left: bool,
    },
    /// Another owner was heard and ranks below this one: it will yield, and the gratuitous ARP
    /// burst starts again.
    Conflict {
        other: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeoverReason {
    /// This node founded the cluster.
    Founded,
    /// No live owner, and this node ranks first.
    Elected,
    /// It joined or returned ranking above the owner.
    Preempted,
}
