//! Multi-link sessions, sans IO: one session's bytes spread over several transports to the
//! same peer and put back in order by offset, surviving the loss of all its transports but
//! one (docs/PROTOCOL.md, 9).
//!
//! A [`MultiStream`] is the session's whole state at one end; each transport carries it as a
//! carrier stream of its [`crate::Connection`] (`open_carrier`, `send_piece`, `read_piece`,
//! `send_ack`, `take_ack`). The caller moves pieces and acknowledgements between the two and
//! tells the session when a transport is lost; the session decides what goes on which
//! transport and judges what the peer sent. A violation it finds is returned as the
//! [`ProtoError`] the caller fails that transport with ([`crate::Connection::fail_link`]).
//!
//! Like MPTCP's data-sequence mapping and DATA_ACK, an acknowledgement is of the session, not
//! of a transport, and cumulative; unlike it there is no per-transport sequence space of our
//! own, because each transport is already reliable and ordered: a byte is sent again only
//! when the transport it went on died.

mod recv;
mod send;
mod sendbuf;

use bytes::Bytes;

use crate::carrier::Piece;
use crate::error::{ProtoError, StreamError};
use recv::RecvHalf;
use send::SendHalf;

/// A transport of a session, as the caller numbers them.
pub type LinkId = usize;

/// One multi-link session at one end. See the module docs.
#[derive(Debug)]
pub struct MultiStream {
    send: SendHalf,
    recv: RecvHalf,
    /// Live transports, in the order they joined.
    links: Vec<LinkId>,
    /// Index in `links` of the transport the next new block prefers.
    next_block: usize,
    /// Index in `links` of the transport the next acknowledgement goes on.
    next_ack: usize,
    /// The acknowledgement being handed out, and the transports it still goes to.
    ack: (u64, bool),
    ack_to: Vec<LinkId>,
    /// `links` in the order of preference for the next piece (kept to spare an allocation).
    order: Vec<LinkId>,
}

impl MultiStream {
    /// The opening end, with its first carrier on `first`. `our_window` is what we grant (our
    /// `stream_window`), `peer_window` what the peer grants (its `Info.stream_window`).
    pub fn open(our_window: u32, peer_window: u32, first: LinkId) -> MultiStream {
        MultiStream {
            send: SendHalf::new(peer_window),
            recv: RecvHalf::new(our_window),
            links: vec![first],
            next_block: 0,
            next_ack: 0,
            ack: (0, false),
            ack_to: Vec::new(),
            order: Vec::new(),
        }
    }

    /// The accepting end, for a session whose first carrier arrived on `first`. It
    /// acknowledges at once, which tells the opener the session exists here, so that its
    /// other carriers may join it.
    pub fn accept(our_window: u32, peer_window: u32, first: LinkId) -> MultiStream {
        let mut m = MultiStream::open(our_window, peer_window, first);
        m.recv.ack_again(false);
        m
    }

    /// A carrier on `link` joined. False if it already had one.
    pub fn add_link(&mut self, link: LinkId) -> bool {
        if self.links.contains(&link) {
            return false;
        }
        self.links.push(link);
        true
    }

    /// Transport `link` is gone: what it had not delivered will be sent on the others, and our
    /// acknowledgement is repeated on each of them. Returns whether any transport is left; with
    /// none the session is lost.
    pub fn lose_link(&mut self, link: LinkId) -> bool {
        if let Some(i) = self.links.iter().position(|l| *l == link) {
            self.links.remove(i);
            self.send.lose_link(link);
            self.ack_to.retain(|l| *l != link);
            self.recv.ack_again(true);
            for at in [&mut self.next_block, &mut self.next_ack] {
                if *at > i {
                    *at -= 1;
                }
            }
        }
        !self.links.is_empty()
    }

    /// The live transports.
    pub fn links(&self) -> &[LinkId] {
        &self.links
    }

    /// The peer acknowledged something: it has the session, so carriers may join it.
    pub fn is_confirmed(&self) -> bool {
        self.send.confirmed
    }

    /// Bytes the application may write now: the peer's window less what is unacknowledged.
    pub fn capacity(&self) -> usize {
        self.send.capacity()
    }

    /// Takes the front of `data` as far as [`MultiStream::capacity`] allows; returns how much.
    pub fn write(&mut self, data: &mut Bytes) -> usize {
        self.send.write(data)
    }

    /// Half-closes: the peer reads the fin after every byte written before.
    pub fn finish(&mut self) {
        self.send.finish();
    }

    pub fn is_finished(&self) -> bool {
        self.send.is_finished()
    }

    /// Whether [`MultiStream::poll_piece`] or [`MultiStream::poll_ack`] may have something.
    pub fn wants_send(&self) -> bool {
        self.send.wants_send() || !self.ack_to.is_empty() || self.recv.ack_due()
    }

    /// The next piece to send and its transport, given how many bytes each transport takes
    /// now (`room`, 0 for none: [`crate::Connection::capacity`] of its carrier). New blocks
    /// rotate over the transports, so every live one carries data.
    pub fn poll_piece(&mut self, mut room: impl FnMut(LinkId) -> usize) -> Option<(LinkId, Piece)> {
        if self.links.is_empty() {
            return None;
        }
        let at = self.next_block % self.links.len();
        self.order.clear();
        self.order.extend_from_slice(&self.links[at..]);
        self.order.extend_from_slice(&self.links[..at]);
        let chosen = self.send.poll_piece(&self.order, &mut room)?;
        if chosen.new_block {
            let i = self.links.iter().position(|l| *l == chosen.link);
            self.next_block = i.map_or(0, |i| i + 1);
        }
        Some((chosen.link, chosen.piece))
    }

    /// An acknowledgement the peer sent (on any transport). An `Err` is a violation: fail the
    /// transport it came on.
    pub fn on_ack(&mut self, offset: u64, fin: bool) -> Result<(), ProtoError> {
        self.send.on_ack(offset, fin).map_err(violation)
    }

    /// A piece that arrived on any transport. An `Err` is a violation: fail the transport it
    /// came on.
    pub fn on_piece(&mut self, piece: Piece) -> Result<(), ProtoError> {
        self.recv.on_piece(piece).map_err(violation)
    }

    /// The next bytes in order, at most `max`: `Ok(None)` is the peer's fin; `Blocked` while
    /// the next byte has not arrived.
    pub fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        self.recv.read(max)
    }

    /// Whether [`MultiStream::read`] would give bytes or the fin.
    pub fn is_readable(&self) -> bool {
        self.recv.is_readable()
    }

    /// The application is done with `n` bytes it read: once a quarter of the window is, the
    /// peer is told (and may send that much more).
    pub fn release(&mut self, n: usize) {
        self.recv.release(n);
    }

    /// The next acknowledgement to send, and on which transport's carrier; call until `None`.
    pub fn poll_ack(&mut self) -> Option<(LinkId, u64, bool)> {
        if self.ack_to.is_empty() && !self.links.is_empty() {
            let a = self.recv.poll_ack()?;
            self.ack = (a.offset, a.fin);
            if a.everywhere {
                self.ack_to.extend(self.links.iter().rev());
            } else {
                let i = self.next_ack % self.links.len();
                self.next_ack = i + 1;
                self.ack_to.push(self.links[i]);
            }
        }
        let link = self.ack_to.pop()?;
        Some((link, self.ack.0, self.ack.1))
    }

    /// Both directions ended and were acknowledged, and the last acknowledgement was handed
    /// out: the carriers may be ended ([`crate::Connection::end_carrier`]).
    pub fn is_done(&self) -> bool {
        self.send.is_done() && self.recv.is_done() && self.ack_to.is_empty()
    }

    /// Bytes held for retransmission; never more than the peer's window.
    pub fn unacked(&self) -> u64 {
        self.send.unacked()
    }

    /// Bytes received and not released (in order or not); never more than our window.
    pub fn buffered(&self) -> u64 {
        self.recv.held()
    }
}

fn violation(e: String) -> ProtoError {
    ProtoError::Protocol(format!("multi-link session: {e}"))
}
