//! Per-stream state: offsets, half-close and credit in both directions, what was received and
//! not read yet, and the stream id space (who may open which ids, which are already closed).
//!
//! This is the one place a stream's state lives. The application reaches it only through the
//! connection's stream API (`app.rs`), so there is nothing to mirror and nothing to lose.

use crate::carrier::CarrierRecv;
use crate::config::Side;
use crate::error::ProtoError;
use crate::idmap::{id_map, IdMap};
use crate::recv::RecvBuf;
use crate::reset::ResetCode;

/// One live stream.
#[derive(Debug)]
pub(crate) struct Stream {
    /// Bytes we may still send before the peer grants more.
    pub send_credit: u64,
    /// Offset of the next byte we send.
    pub send_offset: u64,
    /// We queued our fin.
    pub send_fin: bool,
    /// Offset the next received byte must have.
    recv_offset: u64,
    /// Bytes the peer may still send: what we granted minus what arrived.
    recv_credit: u64,
    /// Bytes released by the application that we have not granted back yet.
    owed: u64,
    /// The peer sent fin.
    pub recv_fin: bool,
    /// Received, not read yet.
    pub recv: RecvBuf,
    /// Read by the application, not released yet: still held in its buffers.
    pub unreleased: u64,
    /// The peer reset the stream; kept until the application has seen it. Boxed: rare, and
    /// every stream carries the field.
    pub reset: Option<Box<(ResetCode, String)>>,
    /// Set for a carrier of a multi-link session (`Open.link`): what arrived, with the
    /// session's offsets, instead of `recv`. A carrier has no stream credit of its own: the
    /// session's window and acknowledgements bound it.
    pub carrier: Option<Box<CarrierRecv>>,
}

impl Stream {
    pub fn new(send_credit: u32, recv_window: u32) -> Stream {
        Stream {
            send_credit: send_credit.into(),
            send_offset: 0,
            send_fin: false,
            recv_offset: 0,
            recv_credit: recv_window.into(),
            owed: 0,
            recv_fin: false,
            recv: RecvBuf::default(),
            unreleased: 0,
            reset: None,
            carrier: None,
        }
    }

    /// A carrier stream: no stream credit either way, pieces kept with their offsets.
    pub fn carrier() -> Stream {
        Stream {
            carrier: Some(Box::default()),
            ..Stream::new(0, 0)
        }
    }

    /// Accounts for a received Data frame; an `Err` is a fatal protocol violation.
    pub fn on_data(&mut self, offset: u64, len: usize, fin: bool) -> Result<(), String> {
        if self.recv_fin {
            return Err("data after fin".into());
        }
        if offset != self.recv_offset {
            return Err(format!(
                "data at offset {offset}, expected {}",
                self.recv_offset
            ));
        }
        let len = len as u64;
        if len > self.recv_credit {
            return Err(format!(
                "stream window exceeded: {len} bytes with {} of credit",
                self.recv_credit
            ));
        }
        self.recv_credit -= len;
        self.recv_offset += len;
        self.recv_fin = fin;
        Ok(())
    }

    /// The application released `n` bytes it had read; returns the credit to grant back, if
    /// the amount owed is now worth a Window frame.
    ///
    /// `n` is clamped to what was read and not yet released, so a confused caller cannot make
    /// us grant credit beyond the window: memory stays bounded by it.
    pub fn release(&mut self, n: usize, window: u32) -> (u64, Option<u32>) {
        let n = (n as u64).min(self.unreleased);
        self.unreleased -= n;
        self.owed += n;
        let window = u64::from(window);
        // After fin the peer sends nothing more, so credit would be wasted bytes on the wire.
        if self.recv_fin || self.owed == 0 || self.owed < (window / 4).max(1) {
            return (n, None);
        }
        let grant = self.owed.min(u64::from(u32::MAX));
        self.recv_credit += grant;
        self.owed -= grant;
        (n, Some(grant as u32))
    }

    /// Bytes this stream holds against the transport window: unread plus unreleased.
    pub fn held(&self) -> u64 {
        let carried = self.carrier.as_ref().map_or(0, |c| c.len());
        (self.recv.len() + carried) as u64 + self.unreleased
    }
}

/// What an id received from the peer refers to.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    Live(&'a mut Stream),
    /// Opened once, forgotten since: frames for it are stragglers and are ignored.
    Closed,
    /// Never opened: the peer is confused, which is fatal.
    Never,
}

/// The live streams and the id space.
#[derive(Debug)]
pub(crate) struct Streams {
    map: IdMap<Stream>,
    /// Parity of our ids: 1 for the initiator (odd ids), 0 for the acceptor (even ids).
    local_parity: u64,
    next_local: u64,
    /// Highest id the peer has opened; 0 before any.
    peer_highest: u64,
}

impl Streams {
    pub fn new(side: Side) -> Streams {
        let (local_parity, next_local) = match side {
            Side::Initiator => (1, 1),
            Side::Acceptor => (0, 2),
        };
        Streams {
            map: id_map(),
            local_parity,
            next_local,
            peer_highest: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The id our next open will use.
    pub fn next_local_id(&self) -> u64 {
        self.next_local
    }

    /// Allocates our next id and registers the stream.
    pub fn open_local(&mut self, stream: Stream) -> u64 {
        let id = self.next_local;
        self.next_local += 2;
        self.map.insert(id, stream);
        id
    }

    /// Records that the peer opened `id`, checking it is the peer's parity and increasing.
    pub fn note_peer_open(&mut self, id: u64) -> Result<(), String> {
        if id % 2 == self.local_parity || id <= self.peer_highest {
            return Err(format!(
                "open of stream {id}: wrong parity or not above {}",
                self.peer_highest
            ));
        }
        self.peer_highest = id;
        Ok(())
    }

    pub fn insert(&mut self, id: u64, stream: Stream) {
        self.map.insert(id, stream);
    }

    pub fn get(&self, id: u64) -> Option<&Stream> {
        self.map.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Stream> {
        self.map.get_mut(&id)
    }

    pub fn remove(&mut self, id: u64) -> Option<Stream> {
        self.map.remove(&id)
    }

    /// Every live stream, for the credit top-up when an early (pre-Accept) transport learns
    /// the acceptor's windows.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut Stream)> {
        self.map.iter_mut().map(|(id, s)| (*id, s))
    }

    /// The live stream a control frame (`what`: "window for", "reset of"…) names: `None` for
    /// a straggler crossing a reset, fatal for an id never opened.
    pub fn target(&mut self, id: u64, what: &str) -> Result<Option<&mut Stream>, ProtoError> {
        match self.lookup(id) {
            Lookup::Live(s) => Ok(Some(s)),
            Lookup::Closed => Ok(None),
            Lookup::Never => Err(ProtoError::Protocol(format!(
                "{what} stream {id} that was never opened"
            ))),
        }
    }

    pub fn lookup(&mut self, id: u64) -> Lookup<'_> {
        let opened = if id == 0 {
            false
        } else if id % 2 == self.local_parity {
            id < self.next_local
        } else {
            id <= self.peer_highest
        };
        match self.map.get_mut(&id) {
            Some(s) => Lookup::Live(s),
            None if opened => Lookup::Closed,
            None => Lookup::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stream of a node holds one of these, idle or not.
    #[test]
    fn a_stream_stays_small() {
        assert!(
            std::mem::size_of::<Stream>() <= 80,
            "{}",
            std::mem::size_of::<Stream>()
        );
    }

    #[test]
    fn offsets_fin_and_credit_are_enforced() {
        let mut s = Stream::new(10, 100);
        assert!(s.on_data(0, 60, false).is_ok());
        assert!(s.on_data(0, 1, false).is_err(), "replayed offset");
        assert!(s.on_data(60, 41, false).is_err(), "over credit");
        assert!(s.on_data(60, 40, true).is_ok());
        assert!(s.on_data(100, 0, false).is_err(), "after fin");
    }

    #[test]
    fn release_grants_at_a_quarter_and_never_beyond_what_was_read() {
        let mut s = Stream::new(0, 100);
        s.on_data(0, 100, false).unwrap();
        s.unreleased = 100;
        assert_eq!(s.release(24, 100), (24, None));
        assert_eq!(s.release(1, 100), (1, Some(25)));
        // Releasing more than was read only grants what was read.
        assert_eq!(s.release(1000, 100), (75, Some(75)));
        assert_eq!(s.release(1000, 100), (0, None));
        assert!(s.on_data(100, 100, false).is_ok());
        assert!(s.on_data(200, 1, false).is_err());
    }

    #[test]
    fn no_grant_after_fin() {
        let mut s = Stream::new(0, 100);
        s.on_data(0, 100, true).unwrap();
        s.unreleased = 100;
        assert_eq!(s.release(100, 100), (100, None));
    }

    #[test]
    fn id_space() {
        let mut ids = Streams::new(Side::Initiator);
        assert_eq!(ids.open_local(Stream::new(1, 1)), 1);
        assert_eq!(ids.open_local(Stream::new(1, 1)), 3);
        assert!(ids.note_peer_open(3).is_err(), "our parity");
        assert!(ids.note_peer_open(0).is_err(), "zero");
        assert!(ids.note_peer_open(4).is_ok());
        assert!(ids.note_peer_open(4).is_err(), "not increasing");
        assert!(ids.note_peer_open(2).is_err(), "decreasing");
        ids.remove(1);
        assert!(matches!(ids.lookup(1), Lookup::Closed));
        assert!(matches!(ids.lookup(3), Lookup::Live(_)));
        assert!(matches!(ids.lookup(5), Lookup::Never));
        assert!(matches!(ids.lookup(2), Lookup::Closed));
        assert!(matches!(ids.lookup(6), Lookup::Never));
        assert!(matches!(ids.lookup(0), Lookup::Never));
        let acc = Streams::new(Side::Acceptor);
        assert_eq!(acc.next_local_id(), 2);
    }
}
