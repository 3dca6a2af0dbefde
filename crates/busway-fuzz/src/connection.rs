//! Two connections driven by a script read from the input: the stream API on both sides (open,
//! write, finish, read, release, stop, reset, go away), deliveries of any size, the clock, and
//! hostile frames with valid CRCs injected into either side.
//!
//! The handshake is chosen by the script's first byte when it is 0xF0 or above (`Mode`);
//! otherwise — as in every seed written before there were modes — both sides hold a secret
//! under a TLS channel binding, so envelopes keep the CRC and hostile frames reach the stream
//! logic. In the keyed modes (secret, token, 0-RTT ticket) a hostile frame can only fail with
//! `auth`, which is checked too.
//!
//! Invariants, after every step:
//! - neither side ever holds more for its application than the transport window it granted;
//! - while nobody injected anything, nothing fails, and every byte read from a stream is the
//!   next byte the other side wrote on it (nothing lost, duplicated or reordered);
//! - a hostile frame injected into a keyed transport fails it with `auth`;
//! - a side that failed stays failed, and has only a GoAway left to say.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use busway_proto::frame::Body;
use busway_proto::{
    encode, Config, Connection, Data, Event, Frame, Open, OpenParams, Ping, ProtoError, Reset,
    ResetCode, Resumption, Side, StreamError, TokenBook, TokenCredential, TokenGrant, Window,
};
use bytes::{Bytes, BytesMut};

use crate::script::Script;

const STREAM_WINDOW: u32 = 16 * 1024;
const CONN_WINDOW: u32 = 64 * 1024;

/// How the two sides authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No secret anywhere: plain envelopes.
    Open,
    /// A shared secret: keyed envelopes.
    Secret,
    /// The initiator proves a token the acceptor issued: keyed envelopes.
    Token,
    /// The initiator resumes a ticket from an earlier transport, its streams in the first
    /// flight: keyed envelopes.
    Ticket,
    /// A shared secret under a TLS channel binding: plain envelopes.
    Bound,
}

impl Mode {
    fn keyed(self) -> bool {
        matches!(self, Mode::Secret | Mode::Token | Mode::Ticket)
    }
}

const SECRET: &[u8] = b"a fuzzing secret, 16+ bytes";
const TOKEN_SECRET: &[u8] = b"a fuzzing token's secret";

struct Book;

impl TokenBook for Book {
    fn find(&self, id: &str) -> Option<TokenGrant> {
        (id == "fuzz-token").then(|| TokenGrant {
            secret: TOKEN_SECRET.to_vec(),
            node: "issued".into(),
            services: vec!["fuzz".into()],
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40),
        })
    }
}

fn config(node: &str, side: Side, mode: Mode, resumption: &Arc<Resumption>) -> Config {
    let mut c = Config {
        node: node.into(),
        secret: Some(SECRET.to_vec()),
        stream_window: STREAM_WINDOW,
        conn_window: CONN_WINDOW,
        ..Config::default()
    };
    match (mode, side) {
        (Mode::Open, _) => c.secret = None,
        (Mode::Bound, _) => c.channel_binding = Some([3; 32]),
        (Mode::Token, Side::Initiator) => {
            c.secret = None;
            c.token = Some(TokenCredential {
                id: "fuzz-token".into(),
                secret: TOKEN_SECRET.to_vec(),
            });
        }
        (_, Side::Acceptor) => {
            c.tokens = Some(Arc::new(Book));
            c.resumption = Some(resumption.clone());
        }
        _ => {}
    }
    c
}

/// A ticket from a full handshake between the same two nodes.
fn earn_ticket(resumption: &Arc<Resumption>, now: Instant) -> Option<busway_proto::Ticket> {
    let mut i = Connection::new(
        Side::Initiator,
        config("ingress", Side::Initiator, Mode::Secret, resumption),
        [5; 32],
        now,
    );
    let mut a = Connection::new(
        Side::Acceptor,
        config("egress", Side::Acceptor, Mode::Secret, resumption),
        [6; 32],
        now,
    );
    let mut wire = BytesMut::new();
    for _ in 0..4 {
        i.transmit(&mut wire);
        a.handle_input(&mut wire, now).ok()?;
        a.transmit(&mut wire);
        i.handle_input(&mut wire, now).ok()?;
    }
    std::iter::from_fn(|| i.poll_event()).find_map(|e| match e {
        Event::Ticket(t) => Some(t),
        _ => None,
    })
}

struct Side_ {
    conn: Connection,
    /// Sent by this side and not yet delivered to the other.
    wire: BytesMut,
    rbuf: BytesMut,
    /// Streams this side can use, by id, and per id: bytes written, bytes read, read but not
    /// released.
    ids: Vec<u64>,
    written: HashMap<u64, u64>,
    read: HashMap<u64, u64>,
    unreleased: HashMap<u64, usize>,
}

impl Side_ {
    fn new(side: Side, config: Config, now: Instant) -> Side_ {
        let nonce = match side {
            Side::Initiator => [1; 32],
            Side::Acceptor => [2; 32],
        };
        Side_ {
            conn: Connection::new(side, config, nonce, now),
            wire: BytesMut::new(),
            rbuf: BytesMut::new(),
            ids: Vec::new(),
            written: HashMap::new(),
            read: HashMap::new(),
            unreleased: HashMap::new(),
        }
    }

    fn pick(&self, k: u8) -> Option<u64> {
        (!self.ids.is_empty()).then(|| self.ids[k as usize % self.ids.len()])
    }

    fn flush(&mut self) {
        self.conn.transmit(&mut self.wire);
        while let Some(ev) = self.conn.poll_event() {
            if let busway_proto::Event::Opened { id, .. } = ev {
                self.ids.push(id);
            }
        }
    }
}

/// The byte at `offset` of every stream: both sides write it, so a reader can check it.
fn pattern(id: u64, offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ id.wrapping_mul(7)) as u8
}

pub fn run(data: &[u8]) {
    run_script(data);
}

/// Runs a script; returns how many stream bytes were read in all (for tests of the target).
fn run_script(data: &[u8]) -> u64 {
    let (mode, data) = match data.split_first() {
        Some((&b, rest)) if b >= 0xf0 => {
            let modes = [
                Mode::Open,
                Mode::Secret,
                Mode::Token,
                Mode::Ticket,
                Mode::Bound,
            ];
            (modes[usize::from(b & 0x0f) % modes.len()], rest)
        }
        _ => (Mode::Bound, data),
    };
    let mut s = Script(data);
    let base = Instant::now();
    let mut now = base;
    let resumption = Arc::new(Resumption::new(Duration::from_secs(600), 16));
    let mut ci = config("ingress", Side::Initiator, mode, &resumption);
    if mode == Mode::Ticket {
        ci.ticket = earn_ticket(&resumption, now);
        assert!(ci.ticket.is_some(), "a full handshake earns a ticket");
    }
    let ca = config("egress", Side::Acceptor, mode, &resumption);
    let mut sides = [
        Side_::new(Side::Initiator, ci, now),
        Side_::new(Side::Acceptor, ca, now),
    ];
    if mode == Mode::Ticket {
        // Sessions opened before the first flight ride in it (0-RTT).
        for _ in 0..2 {
            if let Ok(id) = sides[0].conn.open(OpenParams {
                service: "fuzz".into(),
                ..OpenParams::default()
            }) {
                sides[0].ids.push(id);
            }
        }
    }
    let mut hostile = false;
    // Handshake first, so most scripts reach the streams.
    for _ in 0..4 {
        deliver(&mut sides, 0, usize::MAX, now);
        deliver(&mut sides, 1, usize::MAX, now);
    }
    let mut steps = 0;
    while !s.done() && steps < 4096 {
        steps += 1;
        let op = s.byte();
        let who = usize::from(op & 1);
        let (a, b) = (s.byte(), s.u16());
        let me = &mut sides[who];
        match op >> 1 {
            0 => {
                if let Ok(id) = me.conn.open(OpenParams {
                    service: "fuzz".into(),
                    ..OpenParams::default()
                }) {
                    me.ids.push(id);
                }
            }
            1 => {
                if let Some(id) = me.pick(a) {
                    let at = *me.written.get(&id).unwrap_or(&0);
                    let bytes: Vec<u8> = (at..at + u64::from(b)).map(|o| pattern(id, o)).collect();
                    if let Ok(n) = me.conn.write(id, &mut Bytes::from(bytes)) {
                        *me.written.entry(id).or_default() += n as u64;
                    }
                }
            }
            2 => {
                if let Some(id) = me.pick(a) {
                    let _ = me.conn.finish(id);
                }
            }
            3 => {
                if let Some(id) = me.pick(a) {
                    read(me, id, usize::from(b).max(1), hostile);
                }
            }
            4 => {
                if let Some(id) = me.pick(a) {
                    let n = usize::from(b).min(*me.unreleased.get(&id).unwrap_or(&0));
                    me.conn.release(id, n);
                    *me.unreleased.entry(id).or_default() -= n;
                }
            }
            5 => {
                if let Some(id) = me.pick(a) {
                    me.conn.stop(id);
                    me.unreleased.remove(&id);
                }
            }
            6 => {
                if let Some(id) = me.pick(a) {
                    me.conn.reset(id, ResetCode::from_u32(u32::from(b)), "fuzz");
                    me.unreleased.remove(&id);
                }
            }
            7 => deliver(&mut sides, who, usize::from(b).max(1), now),
            8 => {
                now += Duration::from_millis(u64::from(b) % 2000);
                for side in sides.iter_mut() {
                    if side.conn.poll_timeout().is_some_and(|t| t <= now) {
                        let _ = side.conn.handle_timeout(now);
                    }
                }
                // Silence long enough kills a transport: that is the protocol, not a bug.
                hostile |= now.duration_since(base) >= Duration::from_millis(1500);
            }
            9 => me.conn.go_away("fuzz"),
            10 => {
                hostile = true;
                let f = hostile_frame(a, b, &mut s);
                let mut bytes = BytesMut::new();
                encode(&f, &mut bytes);
                let was_established = me.conn.is_established() && me.conn.error().is_none();
                let r = me.conn.handle_input(&mut bytes, now);
                if mode.keyed() && was_established {
                    let auth = ProtoError::Decode(busway_proto::DecodeError::Auth);
                    assert_eq!(r, Err(auth), "a frame in clear into a keyed transport");
                }
            }
            _ => {
                deliver(&mut sides, 0, usize::MAX, now);
                deliver(&mut sides, 1, usize::MAX, now);
            }
        }
        check(&mut sides, hostile, now);
    }
    sides.iter().flat_map(|s| s.read.values()).sum()
}

/// Reads stream `id` once and checks the bytes are the next ones its writer wrote.
fn read(me: &mut Side_, id: u64, max: usize, hostile: bool) {
    match me.conn.read(id, max) {
        Ok(Some(bytes)) => {
            assert!(bytes.len() <= max);
            let at = *me.read.get(&id).unwrap_or(&0);
            if !hostile {
                for (k, byte) in bytes.iter().enumerate() {
                    assert_eq!(
                        *byte,
                        pattern(id, at + k as u64),
                        "stream {id} offset {}",
                        at + k as u64
                    );
                }
            }
            *me.read.entry(id).or_default() += bytes.len() as u64;
            *me.unreleased.entry(id).or_default() += bytes.len();
        }
        Ok(None) | Err(StreamError::Blocked | StreamError::Closed | StreamError::Reset { .. }) => {}
        Err(e @ StreamError::Misuse(_)) => panic!("read on {id}: {e}"),
    }
}

/// Moves up to `n` bytes from side `from`'s wire into the other side.
fn deliver(sides: &mut [Side_; 2], from: usize, n: usize, now: Instant) {
    sides[from].flush();
    let k = sides[from].wire.len().min(n);
    let bytes = sides[from].wire.split_to(k);
    let to = &mut sides[1 - from];
    to.rbuf.extend_from_slice(&bytes);
    let _ = to.conn.handle_input(&mut to.rbuf, now);
    to.flush();
}

/// A frame with a valid check whose fields come from the script.
fn hostile_frame(kind: u8, x: u16, s: &mut Script<'_>) -> Frame {
    let stream = u64::from(s.byte());
    let body = match kind % 6 {
        0 => Body::Data(Data {
            stream,
            offset: u64::from(s.u16()),
            payload: Bytes::from(vec![0xee; usize::from(x) % 70_000]),
            fin: s.byte() & 1 == 1,
        }),
        1 => Body::Window(Window {
            stream,
            credit: u32::from(x) << (s.byte() % 17),
        }),
        2 => Body::Reset(Reset {
            stream,
            code: u32::from(x),
            reason: "x".repeat(usize::from(s.byte())),
        }),
        3 => Body::Open(Open {
            stream,
            service: "fuzz".into(),
            ..Open::default()
        }),
        4 => Body::Ping(Ping {
            timepoint_us: u64::from(x),
        }),
        _ => Body::GoAway(busway_proto::GoAway {
            reason: String::new(),
        }),
    };
    Frame::new(body)
}

fn check(sides: &mut [Side_; 2], hostile: bool, now: Instant) {
    for side in sides.iter_mut() {
        assert!(side.conn.buffered_bytes() <= u64::from(CONN_WINDOW));
        for (id, n) in &side.unreleased {
            assert!(
                *n <= STREAM_WINDOW as usize,
                "stream {id} holds {n} unreleased"
            );
        }
        if let Some(e) = side.conn.error().cloned() {
            assert!(hostile, "failed without anything hostile: {e}");
            let mut b = BytesMut::new();
            assert_eq!(side.conn.handle_input(&mut b, now), Err(e), "errors stick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(code: u8, who: u8, a: u8, b: u16) -> Vec<u8> {
        vec![code << 1 | who, a, (b >> 8) as u8, b as u8]
    }

    /// The script reaches the streams: a transfer both ways checks every byte it reads.
    #[test]
    fn a_script_moves_and_checks_stream_bytes() {
        let mut script = op(0, 0, 0, 0);
        for _ in 0..8 {
            script.extend(op(1, 0, 0, 16_000));
            script.extend(op(11, 0, 0, 0));
            script.extend(op(3, 1, 0, 60_000));
            script.extend(op(4, 1, 0, 60_000));
            script.extend(op(11, 0, 0, 0));
            script.extend(op(1, 1, 0, 9_000));
            script.extend(op(11, 0, 0, 0));
            script.extend(op(3, 0, 0, 60_000));
            script.extend(op(4, 0, 0, 60_000));
        }
        assert!(
            run_script(&script) >= 8 * 16_000,
            "the streams moved too little"
        );
        // Every handshake mode reaches the streams too.
        for mode in 0xf0..=0xf4u8 {
            let mut s = vec![mode];
            s.extend(&script);
            assert!(run_script(&s) >= 8 * 16_000, "mode {mode:#x}");
        }
    }
}
