//! One multi-link session over several transports between the same two nodes, in memory with
//! the fake clock: a [`Pair`] per transport, a [`MultiStream`] at each end, and the little a
//! node does between them (move pieces and acknowledgements, open and join carriers, fail a
//! transport whose peer broke the rules, tell the session when a transport is gone).
//!
//! End 0 is the opener (at each transport's initiator), end 1 the acceptor. A transport is cut
//! either loudly (both ends learn it at once, as with an RST) or silently (its bytes vanish and
//! the dead-peer timer finds it).

use std::time::Duration;

use busway_proto::{
    Config, Event, LinkId, MultiStream, Piece, ProtoError, ResetCode, StreamError, LINK_KEY_LEN,
};
use bytes::Bytes;

use crate::harness::{config, params, Pair, Who};

/// One end of the session and what its application does.
pub struct End {
    pub who: Who,
    pub ms: Option<MultiStream>,
    /// The carrier stream id on each transport.
    pub carriers: Vec<Option<u64>>,
    /// Bytes the application still has to write, and whether it finishes after them.
    pub out: Bytes,
    pub finish: bool,
    /// The application reads (and releases) whatever arrives.
    pub reads: bool,
    pub got: Vec<u8>,
    pub fin: bool,
    /// Payload bytes handed to each transport, retransmissions included.
    pub sent: Vec<u64>,
    /// The highest `unacked()` seen: the retransmit buffer's peak.
    pub peak_unacked: u64,
    pub peak_buffered: u64,
    /// Transports this end failed for a violation of the peer's, and why.
    pub failed: Vec<(LinkId, ProtoError)>,
    pub reset: Option<StreamError>,
    pub done: bool,
}

impl End {
    fn new(who: Who, n: usize) -> End {
        End {
            who,
            ms: None,
            carriers: vec![None; n],
            out: Bytes::new(),
            finish: false,
            reads: true,
            got: Vec::new(),
            fin: false,
            sent: vec![0; n],
            peak_unacked: 0,
            peak_buffered: 0,
            failed: Vec::new(),
            reset: None,
            done: false,
        }
    }

    pub fn ms(&mut self) -> &mut MultiStream {
        self.ms.as_mut().expect("the session exists at this end")
    }
}

pub struct Links {
    pub pairs: Vec<Pair>,
    /// The transport works; a cut one is never used again.
    pub up: Vec<bool>,
    /// The transport still looks up but its bytes vanish (a silent cut).
    pub blackhole: Vec<bool>,
    pub ends: [End; 2],
    pub key: [u8; LINK_KEY_LEN],
    pub window: u32,
    /// The opener has joined its other carriers.
    joined: bool,
}

pub fn ml_config(node: &str, window: u32) -> Config {
    Config {
        multilink: true,
        stream_window: window,
        ..config(node)
    }
}

impl Links {
    /// `n` established transports, both ends speaking multilink with `window`, and the session
    /// opened on transport 0 (its Open not delivered yet).
    pub fn new(n: usize, window: u32) -> Links {
        let pairs: Vec<Pair> = (0..n)
            .map(|_| {
                let mut p = Pair::established_with(
                    ml_config("ingress", window),
                    ml_config("egress", window),
                );
                p.i.auto_read = false;
                p.a.auto_read = false;
                p
            })
            .collect();
        let mut l = Links {
            up: vec![true; n],
            blackhole: vec![false; n],
            ends: [End::new(Who::I, n), End::new(Who::A, n)],
            key: [7; LINK_KEY_LEN],
            window,
            joined: false,
            pairs,
        };
        let key = l.key;
        let conn = &mut l.pairs[0].i.conn;
        let peer_window = conn.peer().expect("established").stream_window;
        let id = conn
            .open_carrier(params("bulk"), key, false)
            .expect("carrier");
        l.ends[0].carriers[0] = Some(id);
        l.ends[0].ms = Some(MultiStream::open(window, peer_window, 0));
        l
    }

    /// Both ends write `data` and finish.
    pub fn send_both(&mut self, up: &[u8], down: &[u8]) {
        self.ends[0].out = Bytes::copy_from_slice(up);
        self.ends[0].finish = true;
        self.ends[1].out = Bytes::copy_from_slice(down);
        self.ends[1].finish = true;
    }

    /// Cuts transport `l` loudly: what was on its wires is lost and both ends know at once.
    pub fn cut(&mut self, l: LinkId) {
        if !self.up[l] {
            return;
        }
        self.up[l] = false;
        self.pairs[l].i.wire.clear();
        self.pairs[l].a.wire.clear();
        for e in &mut self.ends {
            e.carriers[l] = None;
            if let Some(ms) = e.ms.as_mut() {
                ms.lose_link(l);
            }
        }
    }

    /// Cuts transport `l` silently: its bytes vanish from now on, nobody is told.
    pub fn blackhole(&mut self, l: LinkId) {
        self.blackhole[l] = true;
    }

    /// One round: every transport delivers once each way, then each end does its work.
    /// Returns whether anything moved.
    pub fn tick(&mut self) -> bool {
        let mut moved = false;
        for l in 0..self.pairs.len() {
            if !self.up[l] {
                continue;
            }
            if self.blackhole[l] {
                let p = &mut self.pairs[l];
                p.i.flush();
                p.a.flush();
                p.i.wire.clear();
                p.a.wire.clear();
                continue;
            }
            moved |= self.pairs[l].step(Who::I);
            moved |= self.pairs[l].step(Who::A);
        }
        self.find_dead();
        self.accept_opens();
        for e in 0..2 {
            moved |= self.work(e);
        }
        self.join();
        moved
    }

    /// Ticks until nothing moves; panics if that takes absurdly long (a livelock).
    pub fn run(&mut self) {
        for _ in 0..10_000_000 {
            if !self.tick() {
                return;
            }
        }
        panic!("the session never settles");
    }

    /// Advances every transport's fake clock by `by`, in steps, ticking in between, so pings
    /// flow on the live transports and a silent one is found dead.
    pub fn advance(&mut self, by: Duration, step: Duration) {
        let mut left = by;
        while !left.is_zero() {
            let d = step.min(left);
            left -= d;
            for l in 0..self.pairs.len() {
                if self.up[l] {
                    self.pairs[l].advance(d, false);
                }
            }
            self.run();
        }
    }

    /// Transports whose connection failed (a violation found by the connection itself, or
    /// the dead-peer timer) are cut.
    fn find_dead(&mut self) {
        for l in 0..self.pairs.len() {
            let p = &self.pairs[l];
            let dead = p.i.error.is_some()
                || p.a.error.is_some()
                || p.i.conn.error().is_some()
                || p.a.conn.error().is_some();
            if self.up[l] && dead {
                self.cut(l);
            }
        }
    }

    /// The acceptor's side of Opens: the first carrier creates the session, the others join
    /// it; a join for no session is refused.
    fn accept_opens(&mut self) {
        for l in 0..self.pairs.len() {
            let events = std::mem::take(&mut self.pairs[l].a.events);
            self.pairs[l].i.events.clear();
            for ev in events {
                let Event::Opened { id, open } = ev else {
                    continue;
                };
                let conn = &mut self.pairs[l].a.conn;
                let end = &mut self.ends[1];
                let link = open.link.expect("only carriers are opened here");
                let ours = link.session[..] == self.key[..];
                match end.ms.as_mut().filter(|_| ours) {
                    None if ours && !link.join => {
                        let peer_window = conn.peer().expect("established").stream_window;
                        end.ms = Some(MultiStream::accept(self.window, peer_window, l));
                        end.carriers[l] = Some(id);
                    }
                    Some(ms) if link.join => {
                        ms.add_link(l);
                        end.carriers[l] = Some(id);
                    }
                    _ => conn.reset(id, ResetCode::Refused, "no such session"),
                }
            }
        }
    }

    /// Once the acceptor confirmed the session, the opener adds a carrier on every other live
    /// transport.
    fn join(&mut self) {
        let confirmed = self.ends[0].ms.as_ref().is_some_and(|m| m.is_confirmed());
        if self.joined || !confirmed {
            return;
        }
        self.joined = true;
        for l in 0..self.pairs.len() {
            if !self.up[l] || self.ends[0].carriers[l].is_some() {
                continue;
            }
            let id = self.pairs[l]
                .i
                .conn
                .open_carrier(params("bulk"), self.key, true)
                .expect("join");
            self.ends[0].carriers[l] = Some(id);
            self.ends[0].ms().add_link(l);
        }
    }

    /// One end's work: take pieces and acknowledgements from its carriers, let the
    /// application write and read, send what the session hands out.
    fn work(&mut self, e: usize) -> bool {
        let mut moved = false;
        let who = self.ends[e].who;
        if self.ends[e].ms.is_none() || self.ends[e].done {
            return false;
        }
        for l in 0..self.pairs.len() {
            let Some(id) = self.ends[e].carriers[l].filter(|_| self.up[l]) else {
                continue;
            };
            let conn = &mut self.pairs[l].peer(who).conn;
            let mut pieces = Vec::new();
            loop {
                match conn.read_piece(id, usize::MAX) {
                    Ok(p) => pieces.push(p),
                    Err(StreamError::Blocked) => break,
                    Err(err) => {
                        self.ends[e].reset.get_or_insert(err);
                        break;
                    }
                }
            }
            let ack = conn.take_ack(id);
            let ms = self.ends[e].ms();
            let mut verdict = Ok(());
            for p in pieces {
                moved = true;
                verdict = verdict.and_then(|_| ms.on_piece(p));
            }
            if let Some((offset, fin)) = ack {
                moved = true;
                verdict = verdict.and_then(|_| ms.on_ack(offset, fin));
            }
            if let Err(err) = verdict {
                let reason = self.pairs[l].peer(who).conn.fail_link(err);
                self.ends[e].failed.push((l, reason));
                self.cut(l);
            }
        }
        moved |= self.app(e);
        moved |= self.transmit(e);
        let end = &mut self.ends[e];
        let ms = end.ms.as_mut().expect("checked");
        end.peak_unacked = end.peak_unacked.max(ms.unacked());
        end.peak_buffered = end.peak_buffered.max(ms.buffered());
        if ms.is_done() {
            end.done = true;
            for l in 0..self.pairs.len() {
                if let Some(id) = end.carriers[l].filter(|_| self.up[l]) {
                    self.pairs[l].peer(who).conn.end_carrier(id);
                }
            }
        }
        moved
    }

    fn app(&mut self, e: usize) -> bool {
        let end = &mut self.ends[e];
        let Some(ms) = end.ms.as_mut() else {
            return false;
        };
        let mut moved = false;
        if !end.out.is_empty() {
            moved |= ms.write(&mut end.out) > 0;
        }
        if end.out.is_empty() && end.finish && !ms.is_finished() {
            ms.finish();
            moved = true;
        }
        while end.reads && !end.fin {
            match ms.read(usize::MAX) {
                Ok(Some(b)) => {
                    ms.release(b.len());
                    end.got.extend_from_slice(&b);
                    moved = true;
                }
                Ok(None) => {
                    end.fin = true;
                    moved = true;
                }
                Err(_) => break,
            }
        }
        moved
    }

    /// Hands the session's pieces and acknowledgements to the carriers.
    fn transmit(&mut self, e: usize) -> bool {
        let mut moved = false;
        let who = self.ends[e].who;
        let (pairs, up) = (&mut self.pairs, &self.up);
        let End {
            ms, carriers, sent, ..
        } = &mut self.ends[e];
        let Some(ms) = ms.as_mut() else {
            return false;
        };
        loop {
            let room = |l: LinkId| match carriers[l] {
                Some(id) if up[l] => pairs[l].peer(who).conn.capacity(id).unwrap_or(0),
                _ => 0,
            };
            let Some((l, piece)) = ms.poll_piece(room) else {
                break;
            };
            moved = true;
            sent[l] += piece.payload.len() as u64;
            let id = carriers[l].expect("room only where a carrier is");
            pairs[l]
                .peer(who)
                .conn
                .send_piece(id, piece)
                .expect("a live carrier takes pieces");
        }
        while let Some((l, offset, fin)) = ms.poll_ack() {
            moved = true;
            if let Some(id) = carriers[l] {
                pairs[l]
                    .peer(who)
                    .conn
                    .send_ack(id, offset, fin)
                    .expect("a live carrier takes acks");
            }
        }
        moved
    }

    /// Delivers a hand-made piece to end `e` on transport `l`'s carrier, as if the peer had
    /// sent it.
    pub fn inject_piece(&mut self, e: usize, l: LinkId, piece: Piece) -> Result<(), ProtoError> {
        let who = self.ends[e].who;
        let id = self.ends[e].carriers[l].expect("a carrier");
        let frame = crate::streams::data_frame(id, piece.offset, &piece.payload, piece.fin);
        self.pairs[l].inject(who, &frame)
    }
}
