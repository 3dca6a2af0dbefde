//! Errors fatal to a transport.

use crate::codec::DecodeError;

/// Why a [`crate::Connection`] failed. Except where `send_data`/`open_stream` document
/// otherwise, an error is fatal: the transport must be closed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProtoError {
    /// The peer's bytes are not the bus protocol.
    #[error("peer sent undecodable bytes: {0}")]
    Decode(#[from] DecodeError),
    /// The handshake failed; the payload is the reason label: "auth", "version", "timeout" or
    /// "protocol".
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// A rule broken after the handshake (flow control, offsets, stream ids, sizes), or a
    /// caller mistake reported by `send_data`/`open_stream`.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Nothing received for `dead_after` ping intervals.
    #[error("peer is dead: nothing received for too long")]
    DeadPeer,
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
        }
    }
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
        assert_eq!(ProtoError::Protocol("x".into()).reason(), "protocol");
    }
}
