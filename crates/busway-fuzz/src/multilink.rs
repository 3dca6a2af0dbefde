//! One multi-link session between two ends (`busway_proto::MultiStream`, sans IO), driven by a
//! script: writes, pieces and acknowledgements moved over up to four links in any order and in
//! chunks of any size, links lost (with what they had in flight) and added, the fin, and
//! hostile pieces and acknowledgements injected into either end.
//!
//! Invariants, after every step:
//! - the sender never holds more for retransmission than the peer's window, and the receiver
//!   never holds more than its own;
//! - while nothing hostile was injected, nothing is judged a violation, and every byte read is
//!   the next byte written (nothing lost, duplicated or reordered) — across link losses, as
//!   long as one link is left;
//! - an acknowledgement beyond what was ever sent is a violation.
//!
//! At the end of a clean script, everything still in flight is delivered (bounded): if a link
//! survived, the receiver reads every byte written, then the fin when the writer finished.

use std::collections::VecDeque;

use busway_proto::{LinkId, MultiStream, Piece};
use bytes::Bytes;

use crate::script::Script;

const WINDOW: u32 = 8 * 1024;
const MAX_LINKS: usize = 4;

/// The byte at `offset` of the session: what the reader must see there.
fn at(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8)) as u8
}

/// What is in flight on one link: pieces toward the receiver, acknowledgements back.
#[derive(Default)]
struct Link {
    pieces: VecDeque<Piece>,
    acks: VecDeque<(u64, bool)>,
}

struct Session {
    tx: MultiStream,
    rx: MultiStream,
    /// Indexed by link id; `None` once lost (ids are not reused).
    links: Vec<Option<Link>>,
    written: u64,
    read: u64,
    /// The writer's fin was read.
    fin_read: bool,
    finished: bool,
    /// Something hostile went in: content and violations are no longer checked.
    tainted: bool,
    /// Every link died: the session is lost, nothing more is delivered.
    lost: bool,
}

impl Session {
    fn new() -> Session {
        Session {
            tx: MultiStream::open(WINDOW, WINDOW, 0),
            rx: MultiStream::accept(WINDOW, WINDOW, 0),
            links: vec![Some(Link::default())],
            written: 0,
            read: 0,
            fin_read: false,
            finished: false,
            tainted: false,
            lost: false,
        }
    }

    fn live(&self) -> Vec<LinkId> {
        (0..self.links.len())
            .filter(|i| self.links[*i].is_some())
            .collect()
    }

    fn pick(&self, b: u8) -> Option<LinkId> {
        let live = self.live();
        (!live.is_empty()).then(|| live[b as usize % live.len()])
    }

    fn write(&mut self, n: usize) {
        if self.finished {
            return;
        }
        let n = n.min(self.tx.capacity());
        let bytes: Vec<u8> = (self.written..self.written + n as u64).map(at).collect();
        let mut data = Bytes::from(bytes);
        let took = self.tx.write(&mut data);
        assert!(took <= n, "wrote {took} of {n}");
        self.written += took as u64;
    }

    /// The sender hands out one piece, with `room` bytes free on every link.
    fn send(&mut self, room: usize) {
        let live = self.live();
        let piece = self
            .tx
            .poll_piece(|l| if live.contains(&l) { room } else { 0 });
        if let Some((link, p)) = piece {
            assert!(p.payload.len() <= room.max(1), "piece over the room");
            match self.links.get_mut(link).and_then(Option::as_mut) {
                Some(l) => l.pieces.push_back(p),
                None => panic!("piece for lost or unknown link {link}"),
            }
        }
    }

    fn deliver_piece(&mut self, link: LinkId) {
        let Some(p) = self.links[link].as_mut().and_then(|l| l.pieces.pop_front()) else {
            return;
        };
        let r = self.rx.on_piece(p);
        assert!(self.tainted || r.is_ok(), "a clean piece refused: {r:?}");
    }

    fn ack(&mut self) {
        if let Some((link, offset, fin)) = self.rx.poll_ack() {
            if let Some(l) = self.links.get_mut(link).and_then(Option::as_mut) {
                l.acks.push_back((offset, fin));
            }
        }
    }

    fn deliver_ack(&mut self, link: LinkId) {
        let Some((offset, fin)) = self.links[link].as_mut().and_then(|l| l.acks.pop_front()) else {
            return;
        };
        let r = self.tx.on_ack(offset, fin);
        assert!(self.tainted || r.is_ok(), "a clean ack refused: {r:?}");
    }

    fn read(&mut self, max: usize) {
        match self.rx.read(max.max(1)) {
            Ok(Some(b)) => {
                if !self.tainted {
                    for (i, byte) in b.iter().enumerate() {
                        let o = self.read + i as u64;
                        assert_eq!(*byte, at(o), "wrong byte at offset {o}");
                    }
                    assert!(
                        self.read + b.len() as u64 <= self.written,
                        "read past the written"
                    );
                }
                self.read += b.len() as u64;
                self.rx.release(b.len());
            }
            Ok(None) => {
                if !self.tainted {
                    assert!(self.finished, "a fin nobody sent");
                    assert_eq!(self.read, self.written, "the fin before the last byte");
                }
                self.fin_read = true;
            }
            Err(_) => {}
        }
    }

    fn lose(&mut self, link: LinkId) {
        self.links[link] = None;
        let a = self.tx.lose_link(link);
        let b = self.rx.lose_link(link);
        assert_eq!(a, b, "the ends disagree on what is left");
        self.lost |= !a;
    }

    fn add(&mut self) {
        if self.links.len() >= MAX_LINKS || self.lost {
            return;
        }
        let id = self.links.len();
        self.links.push(Some(Link::default()));
        assert!(self.tx.add_link(id));
        assert!(self.rx.add_link(id));
    }

    fn check(&self) {
        assert!(
            self.tx.unacked() <= u64::from(WINDOW),
            "retransmit over the window"
        );
        assert!(
            self.rx.buffered() <= u64::from(WINDOW),
            "receive over the window"
        );
    }

    /// Delivers everything in flight, both ways, until nothing moved for a few rounds
    /// (bounded: a window's worth of bytes needs a few thousand rounds at most).
    fn settle(&mut self) {
        let mut still = 0;
        for _ in 0..20_000 {
            let before = (self.read, self.fin_read, self.tx.unacked());
            self.send(BLOCK_ROOM);
            self.ack();
            for link in self.live() {
                self.deliver_piece(link);
                self.deliver_ack(link);
            }
            self.read(usize::MAX);
            self.check();
            let moved = (self.read, self.fin_read, self.tx.unacked()) != before;
            let idle = self.live().iter().all(|l| {
                self.links[*l]
                    .as_ref()
                    .is_some_and(|k| k.pieces.is_empty() && k.acks.is_empty())
            });
            still = if moved || !idle { 0 } else { still + 1 };
            if still >= 3 {
                return;
            }
        }
    }
}

const BLOCK_ROOM: usize = 4096;

pub fn run(data: &[u8]) {
    let mut s = Script(data);
    let mut m = Session::new();
    while !s.done() {
        let op = s.byte();
        let arg = s.byte();
        match op % 12 {
            0 | 1 => m.write(usize::from(s.u16()) % 6000),
            2 | 3 => m.send(usize::from(arg) * 16 + 1),
            4 | 5 => {
                if let Some(l) = m.pick(arg) {
                    m.deliver_piece(l);
                }
            }
            6 => m.ack(),
            7 => {
                if let Some(l) = m.pick(arg) {
                    m.deliver_ack(l);
                }
            }
            8 => m.read(usize::from(s.u16())),
            9 => match arg % 4 {
                0 => m.finish_write(),
                1 => m.add(),
                _ => {
                    if let Some(l) = m.pick(arg) {
                        m.lose(l);
                    }
                }
            },
            10 => {
                // A hostile piece: any offset near the window, any length, any fin.
                m.tainted = true;
                let offset = u64::from(s.u16()) * u64::from(arg % 8 + 1);
                let len = usize::from(s.byte()) * 64;
                let _ = m.rx.on_piece(Piece {
                    offset,
                    payload: Bytes::from(vec![0xA5; len]),
                    fin: arg & 1 == 1,
                });
            }
            _ => {
                // A hostile acknowledgement; beyond what was ever written it must be refused.
                let offset = u64::from(s.u16()) * u64::from(arg % 8 + 1);
                let r = m.tx.on_ack(offset, arg & 1 == 1);
                if offset > m.written && !m.tainted {
                    assert!(r.is_err(), "an ack of {offset} with {} written", m.written);
                }
                m.tainted = true;
            }
        }
        m.check();
    }
    if m.tainted || m.lost {
        return;
    }
    m.settle();
    assert_eq!(m.read, m.written, "bytes written never arrived");
    assert_eq!(m.fin_read, m.finished, "the fin was lost or invented");
}

impl Session {
    fn finish_write(&mut self) {
        self.tx.finish();
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clean scripts of the corpus deliver every byte; a script that loses its only link
    /// is the one kind of clean script that may not.
    #[test]
    fn a_clean_transfer_over_two_links_losing_one_arrives_whole() {
        let mut m = Session::new();
        m.add();
        m.write(5000);
        for _ in 0..6 {
            m.send(1600);
        }
        m.deliver_piece(1);
        m.lose(0);
        m.finish_write();
        m.settle();
        assert!(!m.lost);
        assert_eq!((m.read, m.fin_read), (5000, true));
    }
}
