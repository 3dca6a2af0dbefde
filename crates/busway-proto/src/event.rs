//! What a [`crate::Connection`] tells its driver.
//!
//! Stream bytes are not events: they wait in the stream until the application reads them with
//! [`crate::Connection::read`]. Events only say *that* a stream can make progress, so a driver
//! wakes whoever waits on it, and the state itself never leaves the connection.

use std::time::Duration;

use crate::config::PeerInfo;
use crate::frame::Open;
use crate::ticket::Ticket;
use crate::trust::Trust;

/// Something the application must act on, from [`crate::Connection::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The handshake is done; `rtt` is the round trip it measured (zero at an acceptor that
    /// resumed or answered an eager Auth: it saw no round trip; the first pong measures it).
    /// `trust` is what the peer proved; for a token peer `peer.node` is the token's name.
    /// `resumed`: the transport used a ticket (counted `kind="resumed"`).
    Established {
        peer: PeerInfo,
        rtt: Duration,
        trust: Trust,
        resumed: bool,
    },
    /// Initiator: the acceptor gave us a resumption ticket; keep it for the next transport to
    /// this peer ([`crate::Config::ticket`]), for at most its `lifetime`. A later one replaces it.
    Ticket(Ticket),
    /// The peer opened stream `id`; read and write it with the stream API, and `stop` it when
    /// done with it.
    Opened { id: u64, open: Open },
    /// Stream `id` has something to read: bytes, its fin, or the peer's reset.
    Readable { id: u64 },
    /// Stream `id` may write again: the peer granted credit, or reset it.
    Writable { id: u64 },
    /// The transport's send backlog drained: a stream refused for it may write again.
    SendRoom,
    /// A round trip measured by a ping.
    Rtt(Duration),
    /// The peer takes no new streams; open ones go on.
    GoAway { reason: String },
}
