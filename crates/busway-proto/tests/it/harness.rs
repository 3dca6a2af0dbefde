//! Two connections wired back to back in memory, with a fake clock (quinn-proto style).
//!
//! Bytes written by one side sit on its "wire" until delivered to the other, `chunk` bytes at
//! a time, so tests can run the protocol byte by byte and control exactly when frames arrive.
//! A side with `auto_read` plays an application that keeps up: it reads every readable stream
//! into `got` and releases the bytes at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use busway_proto::{
    encode, Config, Connection, Event, Frame, OpenParams, ProtoError, Side, StreamError,
};
use bytes::{Bytes, BytesMut};

/// Every connection gets a distinct nonce, as a real driver would with random bytes.
pub fn fresh_nonce() -> [u8; 32] {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut n = [0u8; 32];
    n[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    n[8..16].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    n
}

pub struct Peer {
    pub conn: Connection,
    /// Bytes this side transmitted that the other side has not received yet.
    pub wire: BytesMut,
    /// This side's receive buffer (handed to `handle_input`).
    pub rbuf: BytesMut,
    pub events: Vec<Event>,
    pub error: Option<ProtoError>,
    /// Read (and release) every readable stream while polling events.
    pub auto_read: bool,
    /// What `auto_read` or [`Peer::drain`] read per stream, and whether the fin came.
    pub got: HashMap<u64, (Vec<u8>, bool)>,
    /// Resets read per stream.
    pub resets: HashMap<u64, StreamError>,
    /// Every byte this side ever transmitted, for replay tests.
    pub sent_log: BytesMut,
}

impl Peer {
    fn new(conn: Connection) -> Peer {
        Peer {
            conn,
            wire: BytesMut::new(),
            rbuf: BytesMut::new(),
            events: Vec::new(),
            error: None,
            auto_read: true,
            got: HashMap::new(),
            resets: HashMap::new(),
            sent_log: BytesMut::new(),
        }
    }

    /// Moves everything ready into `wire`; returns whether anything was written.
    pub fn flush(&mut self) -> bool {
        let before = self.wire.len();
        self.conn.transmit(&mut self.wire);
        self.sent_log.extend_from_slice(&self.wire[before..]);
        self.wire.len() > before
    }

    pub fn poll_events(&mut self) {
        while let Some(ev) = self.conn.poll_event() {
            if self.auto_read {
                if let Event::Readable { id } = &ev {
                    self.drain(*id);
                }
            }
            self.events.push(ev);
        }
    }

    /// Reads stream `id` until it blocks, releasing every byte at once.
    pub fn drain(&mut self, id: u64) {
        loop {
            match self.conn.read(id, usize::MAX) {
                Ok(Some(b)) => {
                    self.got.entry(id).or_default().0.extend_from_slice(&b);
                    self.conn.release(id, b.len());
                }
                Ok(None) => {
                    self.got.entry(id).or_default().1 = true;
                    return;
                }
                Err(StreamError::Blocked) => return,
                Err(e) => {
                    self.resets.insert(id, e);
                    return;
                }
            }
        }
    }

    fn record(&mut self, r: Result<(), ProtoError>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// All bytes read on `id` so far, and whether fin was seen.
    pub fn received(&self, id: u64) -> (Vec<u8>, bool) {
        self.got.get(&id).cloned().unwrap_or_default()
    }

    /// Writes as much of `data` as credit allows; returns how much was taken.
    pub fn send(&mut self, id: u64, data: &[u8]) -> usize {
        let mut b = Bytes::copy_from_slice(data);
        match self.conn.write(id, &mut b) {
            Ok(n) => n,
            Err(StreamError::Blocked) => 0,
            Err(e) => panic!("write on {id}: {e}"),
        }
    }

    /// Opens a stream with [`params`].
    pub fn open(&mut self, service: &str) -> u64 {
        self.conn.open(params(service)).expect("open")
    }
}

pub struct Pair {
    pub base: Instant,
    pub now: Instant,
    pub i: Peer,
    pub a: Peer,
    /// Bytes delivered per step; 1 runs the protocol byte by byte.
    pub chunk: usize,
}

/// Which side of a [`Pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    I,
    A,
}

pub fn config(node: &str) -> Config {
    Config {
        node: node.into(),
        ..Config::default()
    }
}

pub fn params(service: &str) -> OpenParams {
    OpenParams {
        service: service.into(),
        session_id: format!("{service}-session"),
        client: "127.0.0.1:5555".into(),
        mode: "tcp".into(),
        ..OpenParams::default()
    }
}

impl Pair {
    pub fn new(ci: Config, ca: Config) -> Pair {
        let base = Instant::now();
        Pair {
            base,
            now: base,
            i: Peer::new(Connection::new(Side::Initiator, ci, fresh_nonce(), base)),
            a: Peer::new(Connection::new(Side::Acceptor, ca, fresh_nonce(), base)),
            chunk: usize::MAX,
        }
    }

    /// A pair with default settings, already established, events cleared.
    pub fn established() -> Pair {
        Pair::established_with(config("ingress"), config("egress"))
    }

    pub fn established_with(ci: Config, ca: Config) -> Pair {
        let mut p = Pair::new(ci, ca);
        p.drive();
        assert!(p.i.conn.is_established() && p.a.conn.is_established());
        p.i.events.clear();
        p.a.events.clear();
        p
    }

    pub fn peer(&mut self, who: Who) -> &mut Peer {
        match who {
            Who::I => &mut self.i,
            Who::A => &mut self.a,
        }
    }

    /// Transmits from `from` and delivers up to `chunk` bytes of its wire to the other side.
    /// Returns whether any byte moved.
    pub fn step(&mut self, from: Who) -> bool {
        let now = self.now;
        let chunk = self.chunk;
        let (src, dst) = match from {
            Who::I => (&mut self.i, &mut self.a),
            Who::A => (&mut self.a, &mut self.i),
        };
        src.flush();
        src.poll_events();
        if src.wire.is_empty() || dst.error.is_some() {
            return false;
        }
        let n = src.wire.len().min(chunk);
        dst.rbuf.extend_from_slice(&src.wire.split_to(n));
        let r = dst.conn.handle_input(&mut dst.rbuf, now);
        dst.record(r);
        dst.poll_events();
        true
    }

    /// Moves bytes both ways until neither side has anything left to say.
    pub fn drive(&mut self) {
        loop {
            let a = self.step(Who::I);
            let b = self.step(Who::A);
            if !a && !b {
                break;
            }
        }
    }

    /// Writes all of `data` on stream `id` from `from`, driving whenever credit runs out, then
    /// its fin if `fin`.
    pub fn transfer(&mut self, from: Who, id: u64, data: &[u8], fin: bool) {
        let mut sent = 0;
        let mut stuck = 0;
        while sent < data.len() {
            let n = self.peer(from).send(id, &data[sent..]);
            sent += n;
            self.drive();
            stuck = if n == 0 { stuck + 1 } else { 0 };
            assert!(stuck < 3, "no credit comes back on stream {id}");
        }
        if fin {
            self.peer(from).conn.finish(id).expect("finish");
        }
        self.drive();
    }

    /// Delivers a hand-made frame to `to`, as if the other side had sent it.
    pub fn inject(&mut self, to: Who, frame: &Frame) -> Result<(), ProtoError> {
        let mut bytes = BytesMut::new();
        encode(frame, &mut bytes);
        self.inject_bytes(to, &bytes)
    }

    pub fn inject_bytes(&mut self, to: Who, bytes: &[u8]) -> Result<(), ProtoError> {
        let now = self.now;
        let dst = self.peer(to);
        dst.rbuf.extend_from_slice(bytes);
        let r = dst.conn.handle_input(&mut dst.rbuf, now);
        dst.record(r.clone());
        dst.poll_events();
        r
    }

    /// Advances the fake clock, firing both sides' timers in order, and drives after each
    /// firing when `deliver` is set (otherwise bytes stay on the wires).
    pub fn advance(&mut self, by: Duration, deliver: bool) {
        let target = self.now + by;
        loop {
            let next = [&self.i, &self.a]
                .iter()
                .filter(|p| p.error.is_none())
                .filter_map(|p| p.conn.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.fire_timers();
                    if deliver {
                        self.drive();
                    }
                }
                _ => break,
            }
        }
        self.now = target;
        self.fire_timers();
        if deliver {
            self.drive();
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for p in [&mut self.i, &mut self.a] {
            if p.error.is_none() && p.conn.poll_timeout().is_some_and(|t| t <= now) {
                let r = p.conn.handle_timeout(now);
                p.record(r);
            }
        }
    }
}
