//! The stream API of carriers, the per-transport streams of a multi-link session
//! (docs/PROTOCOL.md, 9). A [`crate::MultiStream`] decides what goes where; these calls move
//! its pieces and acknowledgements through one transport.
//!
//! A carrier differs from a plain stream in three ways: its Data offsets are the session's
//! (they jump, and repeat after a transport was lost), it has no stream credit (the session's
//! window, carried by `Ack`, paces it), and the transport credit its bytes used comes back as
//! soon as the session takes them ([`Connection::read_piece`]): from then on they count
//! against the session's window, which is returned only when the application releases them.

use bytes::Bytes;

use crate::carrier::{Piece, CAP_MULTILINK, LINK_KEY_LEN};
use crate::config::OpenParams;
use crate::connection::Connection;
use crate::error::{ProtoError, StreamError};
use crate::frame::{Ack, Body, Data, Link};

impl Connection {
    /// Whether carriers may be opened and accepted here: both ends announced
    /// [`CAP_MULTILINK`]. Known once the peer's `Info` is (at an initiator, its Accept).
    pub fn multilink(&self) -> bool {
        self.config.multilink
            && self
                .peer
                .as_ref()
                .is_some_and(|p| p.capabilities.iter().any(|c| c == CAP_MULTILINK))
    }

    /// Opens a carrier of the multi-link session `session`: the first one (`join: false`)
    /// also opens the session at the peer, the others join it. `Misuse` unless
    /// [`Connection::multilink`].
    pub fn open_carrier(
        &mut self,
        p: OpenParams,
        session: [u8; LINK_KEY_LEN],
        join: bool,
    ) -> Result<u64, StreamError> {
        if self.error.is_none() && !self.multilink() {
            return Err(StreamError::Misuse("multilink was not negotiated"));
        }
        let link = Link {
            session: Bytes::copy_from_slice(&session),
            join,
        };
        self.open_stream(p, Some(link))
    }

    /// Queues `piece` on carrier `id`, split into frames the peer accepts; the fin, if any,
    /// rides on the last. Call [`Connection::capacity`] first: it says whether the transport's
    /// backlog has room.
    pub fn send_piece(&mut self, id: u64, piece: Piece) -> Result<(), StreamError> {
        let max_chunk = self.max_chunk.max(1);
        self.carrier_stream(id)?;
        let Piece {
            mut offset,
            mut payload,
            fin,
        } = piece;
        loop {
            let part = payload.split_to(payload.len().min(max_chunk));
            let len = part.len() as u64;
            let last = payload.is_empty();
            self.out.push_data(Data {
                stream: id,
                offset,
                payload: part,
                fin: fin && last,
            });
            offset += len;
            if last {
                return Ok(());
            }
        }
    }

    /// The oldest piece that arrived on carrier `id`, at most `max` bytes, for the session to
    /// take; `Blocked` when none. Its transport credit goes back to the peer now.
    pub fn read_piece(&mut self, id: u64, max: usize) -> Result<Piece, StreamError> {
        let s = self.live_stream(id)?;
        if let Some(r) = &s.reset {
            return Err(StreamError::Reset {
                code: r.0,
                reason: r.1.clone(),
            });
        }
        let c = s
            .carrier
            .as_mut()
            .ok_or(StreamError::Misuse("not a carrier"))?;
        let piece = c.pop(max).ok_or(StreamError::Blocked)?;
        self.return_conn_credit(piece.payload.len() as u64);
        Ok(piece)
    }

    /// Queues the session's acknowledgement on carrier `id`.
    pub fn send_ack(&mut self, id: u64, offset: u64, fin: bool) -> Result<(), StreamError> {
        self.carrier_stream(id)?;
        self.out.push_control(Body::Ack(Ack {
            stream: id,
            offset,
            fin,
        }));
        Ok(())
    }

    /// The highest acknowledgement the peer sent on carrier `id` since the last call.
    pub fn take_ack(&mut self, id: u64) -> Option<(u64, bool)> {
        self.streams.get_mut(id)?.carrier.as_mut()?.ack.take()
    }

    /// The session is over (every byte acknowledged both ways): forgets carrier `id` without
    /// a Reset; what is still queued for it (its last acknowledgement) goes out, and frames the
    /// peer still sends on it are stragglers.
    pub fn end_carrier(&mut self, id: u64) {
        if self.error.is_some() {
            return;
        }
        if let Some(s) = self.streams.remove(id) {
            self.return_conn_credit(s.held());
        }
    }

    /// The session found the peer's frames on this transport impossible (an acknowledgement of
    /// bytes never sent, bytes beyond the window, a fin that moved): the transport fails with
    /// `e` (a [`ProtoError::Protocol`] from [`crate::MultiStream`]), like any violation found
    /// here.
    pub fn fail_link(&mut self, e: ProtoError) -> ProtoError {
        match &self.error {
            Some(e) => e.clone(),
            None => self.fail(e),
        }
    }

    fn carrier_stream(&mut self, id: u64) -> Result<(), StreamError> {
        let s = self.writable_stream(id)?;
        match s.carrier {
            Some(_) => Ok(()),
            None => Err(StreamError::Misuse("not a carrier")),
        }
    }
}
