//! Errors fatal to a transport, and the answers of the stream API.

use crate::codec::DecodeError;
use crate::reset::ResetCode;

/// Why a [`crate::Connection`] failed. Every one is fatal: the transport must be closed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProtoError {
    /// The peer's bytes are not the bus protocol.
    #[error("peer sent undecodable bytes: {0}")]
    Decode(#[from] DecodeError),
    /// The handshake failed; the payload is the reason label: "auth", "version", "timeout" or
    /// "protocol".
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// A rule broken after the handshake (flow control, offsets, stream ids, sizes).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Nothing received for `dead_after` ping intervals.
    #[error("peer is dead: nothing received for too long")]
    DeadPeer,
    /// The peer floods us: more pings or refused opens than any node sends within a second, or
    /// it sends and does not read — we stopped reading it because it left more control frames
    /// unread than we keep, or what we may send waited for its socket, for `dead_after` ping
    /// intervals.
    #[error("peer floods us and does not read")]
    Flood,
}

impl ProtoError {
    /// Whether the transport failed before it was established, so the driver can count
    /// handshake failures apart from transports that broke later.
    pub fn is_handshake(&self) -> bool {
        matches!(self, ProtoError::Handshake(_))
    }

    /// A fixed label, usable as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            ProtoError::Decode(e) => e.reason(),
            ProtoError::Handshake(r) => r,
            ProtoError::Protocol(_) => "protocol",
            ProtoError::DeadPeer => "dead_peer",
            ProtoError::Flood => "flood",
        }
    }
}

/// Why a stream call could not do what was asked. None of these harm the connection.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StreamError {
    /// Nothing to read yet, or no credit or backlog room to write: wait for
    /// [`crate::Event::Readable`] / [`crate::Event::Writable`] / [`crate::Event::SendRoom`].
    #[error("the stream would block")]
    Blocked,
    /// The peer aborted the stream.
    #[error("reset by the peer ({code}): {reason}")]
    Reset { code: ResetCode, reason: String },
    /// No such live stream: never opened, already stopped or reset by us, or the connection
    /// failed.
    #[error("no such stream")]
    Closed,
    /// The caller broke the API's rules (data after fin, more than the credit it was told).
    #[error("misuse of the stream API: {0}")]
    Misuse(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(
            ProtoError::Decode(DecodeError::Checksum).reason(),
            "checksum"
        );
        assert_eq!(ProtoError::Handshake("auth").reason(), "auth");
        assert!(ProtoError::Handshake("timeout").is_handshake());
        assert!(!ProtoError::DeadPeer.is_handshake());
        assert_eq!(ProtoError::DeadPeer.reason(), "dead_peer");
        assert_eq!(ProtoError::Flood.reason(), "flood");
        assert_eq!(ProtoError::Protocol("x".into()).reason(), "protocol");
    }
}
