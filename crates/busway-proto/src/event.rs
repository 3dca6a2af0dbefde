//! What a [`crate::Connection`] tells its driver.

use std::time::Duration;

use bytes::Bytes;

use crate::config::PeerInfo;
use crate::frame::Open;
use crate::reset::ResetCode;

/// Something the application must act on, from [`crate::Connection::poll_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The handshake is done; `rtt` is the round trip it measured.
    Established { peer: PeerInfo, rtt: Duration },
    /// The peer opened a stream; we may send it `send_credit` bytes before it grants more.
    StreamOpened {
        id: u64,
        open: Open,
        send_credit: u32,
    },
    /// Stream bytes, in order. `fin`: the peer half-closed (`data` may then be empty).
    /// Call [`crate::Connection::consume`] once they are delivered, or the peer stalls.
    Data { id: u64, data: Bytes, fin: bool },
    /// The peer granted `credit` more bytes on stream `id` (never 0: transport credit is
    /// handled inside the connection).
    Credit { id: u64, credit: u32 },
    /// The peer aborted the stream; it is forgotten.
    Reset {
        id: u64,
        code: ResetCode,
        reason: String,
    },
    /// A round trip measured by a ping.
    Rtt(Duration),
    /// The peer takes no new streams; open ones go on.
    GoAway { reason: String },
}
