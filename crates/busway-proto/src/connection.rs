//! The connection state machine: one transport between two nodes, sans IO.
//!
//! The driver feeds received bytes to [`Connection::handle_input`] (or decoded frames to
//! [`Connection::handle_frame`]) and the clock to [`Connection::handle_timeout`], and takes out
//! events ([`Connection::poll_event`]), frames to write ([`Connection::poll_transmit`]) and the
//! next deadline ([`Connection::poll_timeout`]). Sessions use the stream API (`app.rs`) on the
//! same value. No sockets and no clock of its own, so tests run two connections byte by byte
//! with a fake clock. Handshake frames are handled in `establish.rs`, later ones in
//! `inbound.rs`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::codec::DecodeError;
use crate::config::{Config, PeerInfo, Side};
use crate::error::ProtoError;
use crate::establish::Pending;
use crate::event::Event;
use crate::frame::{Body, Frame, GoAway, Ping, Window};
use crate::handshake::MAX_EARLY_STREAMS;
use crate::mac::FrameMac;
use crate::outbox::{Outbox, MAX_CONTROL_BACKLOG};
use crate::segments::Segments;
use crate::stream::Streams;
use crate::trust::Trust;
use crate::wire::{Decoder, RecvCheck, Rekey};
use crate::MAX_DATA_PAYLOAD;

/// Most streams the peer may have open at once; beyond it Opens are refused, so a peer cannot
/// make us hold unbounded state.
pub const MAX_STREAMS: usize = 1 << 16;

/// Reset and GoAway reasons are cut to this many bytes: they are for humans and logs.
pub const MAX_REASON_LEN: usize = 256;

/// Pings a peer may send within [`FLOOD_WINDOW`]; a node pings twice a second.
pub const MAX_PINGS_PER_WINDOW: u32 = 256;
/// Opens we may have to refuse (going away, too many streams) within [`FLOOD_WINDOW`]: a burst
/// crossing our GoAway is normal, a stream of them is not.
pub const MAX_REFUSALS_PER_WINDOW: u32 = 4096;
/// The window over which pings and refusals are counted.
pub const FLOOD_WINDOW: Duration = Duration::from_secs(1);

/// Worst-case bytes a Data frame adds around its payload (tags, varints, fin), used to keep
/// Data frames within the peer's `max_frame`.
pub(crate) const DATA_OVERHEAD: u32 = 32;

/// Where the handshake is (docs/PROTOCOL.md, 3.1). What it has learnt so far is in
/// [`Connection::hs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Initiator: Hello sent, waiting for the acceptor's nonce.
    AwaitChallenge,
    /// Initiator: Auth (or a resuming Hello) sent; streams may open and send within the early
    /// windows until the acceptor's Accept.
    AwaitAccept,
    /// Acceptor, before the peer's Hello.
    AwaitHello,
    /// Acceptor: Challenge sent (or an eager Hello seen); the initiator has to prove itself.
    AwaitAuth,
    Established,
}

/// One transport's protocol state. See the crate docs and docs/PROTOCOL.md.
pub struct Connection {
    side: Side,
    pub(crate) config: Config,
    pub(crate) nonce: [u8; 32],
    /// Origin of ping timepoints and of the handshake deadline.
    pub(crate) created: Instant,
    pub(crate) state: State,
    /// The handshake in progress; dropped (with its secrets) once established.
    pub(crate) hs: Option<Box<Pending>>,
    pub(crate) peer: Option<PeerInfo>,
    pub(crate) trust: Option<Trust>,
    /// The fingerprint of our own secret that verified the peer's proof (see
    /// [`Connection::verified_by`]).
    pub(crate) verified_by: Option<[u8; 8]>,
    pub(crate) resumed: bool,
    /// Streams were given the early windows (opened before the Accept): topped up on it.
    pub(crate) early_credit: bool,
    /// Initiator: the resumption secret of the ticket the acceptor will send.
    pub(crate) resume_secret: Option<[u8; 32]>,
    /// The key the driver must write with from the next frames on.
    pub(crate) pending_send: Option<FrameMac>,
    /// What the driver's decoder must check after the handshake frame it holds at.
    pub(crate) pending_recv: Option<RecvCheck>,
    /// The checks of [`Connection::handle_input`] and [`Connection::transmit`], for drivers
    /// that let the connection encode and decode.
    decoder: Decoder,
    encoder: Segments,
    pub(crate) rtt: Option<Duration>,
    pub(crate) streams: Streams,
    pub(crate) out: Outbox,
    pub(crate) events: VecDeque<Event>,
    /// Payload bytes the peer may still send on the whole transport.
    pub(crate) conn_recv_credit: u64,
    /// Payload bytes released (or dropped) and not granted back yet.
    conn_owed: u64,
    /// Largest payload we put in one Data frame, given the peer's `max_frame`.
    pub(crate) max_chunk: usize,
    pub(crate) local_goaway: bool,
    /// Our GoAway's reason until it can be sent.
    goaway_reason: String,
    pub(crate) peer_goaway: bool,
    last_recv: Instant,
    /// Start of the current flood-counting window, and what the peer made us do in it.
    flood_since: Instant,
    pub(crate) pings_seen: u32,
    pub(crate) refusals: u32,
    pub(crate) next_ping: Option<Instant>,
    /// Set once a fatal error happened; every later call reports it again.
    pub(crate) error: Option<ProtoError>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("node", &self.config.node)
            .field("established", &self.is_established())
            .field("peer", &self.peer.as_ref().map(|p| &p.node))
            .field("streams", &self.streams.len())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A new transport. `nonce` must be fresh random bytes; the initiator queues its first
    /// flight now (with a ticket, streams opened before the driver first transmits ride in it).
    pub fn new(side: Side, config: Config, nonce: [u8; 32], now: Instant) -> Connection {
        let mut conn = Connection {
            side,
            nonce,
            created: now,
            state: match side {
                Side::Initiator => State::AwaitChallenge,
                Side::Acceptor => State::AwaitHello,
            },
            hs: None,
            peer: None,
            trust: None,
            verified_by: None,
            resumed: false,
            early_credit: false,
            resume_secret: None,
            pending_send: None,
            pending_recv: None,
            decoder: Decoder::new(),
            encoder: Segments::default(),
            rtt: None,
            streams: Streams::new(side),
            out: Outbox::default(),
            events: VecDeque::new(),
            conn_recv_credit: config.conn_window.into(),
            conn_owed: 0,
            max_chunk: MAX_DATA_PAYLOAD,
            local_goaway: false,
            goaway_reason: String::new(),
            peer_goaway: false,
            last_recv: now,
            flood_since: now,
            pings_seen: 0,
            refusals: 0,
            next_ping: None,
            error: None,
            config,
        };
        if side == Side::Initiator {
            conn.start();
        }
        conn
    }

    /// Decodes and processes every complete frame in `buf`, leaving a partial one in place.
    /// An `Err` is fatal: close the transport (after one last [`Connection::poll_transmit`],
    /// which tells the peer why in a GoAway). A driver uses either this and
    /// [`Connection::transmit`], or its own [`Decoder`] and [`Segments`], not both.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), ProtoError> {
        self.check_alive()?;
        loop {
            match self.decoder.decode(buf) {
                Ok(Some(frame)) => self.handle_frame(frame, now)?,
                Ok(None) if self.decoder.is_held() => {
                    let check = self.pending_recv.take();
                    self.decoder.set(check);
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.handle_decode_error(e)),
            }
        }
    }

    /// Gives the driver's decoder the check the handshake frame it holds at established, and
    /// lets it go on. Call it after handing every decoded frame to [`Connection::handle_frame`],
    /// whenever [`Decoder::is_held`].
    pub fn update_decoder(&mut self, decoder: &mut Decoder) {
        decoder.set(self.pending_recv.take());
    }

    /// Processes one frame the driver decoded itself (outside whatever lock guards us).
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtoError> {
        self.check_alive()?;
        self.last_recv = now;
        if now.saturating_duration_since(self.flood_since) >= FLOOD_WINDOW {
            self.flood_since = now;
            self.pings_seen = 0;
            self.refusals = 0;
        }
        self.on_frame(frame, now).map_err(|e| self.fail(e))?;
        if self.pings_seen > MAX_PINGS_PER_WINDOW || self.refusals > MAX_REFUSALS_PER_WINDOW {
            return Err(self.fail(ProtoError::Flood));
        }
        Ok(())
    }

    /// The driver's decoder rejected the peer's bytes: the connection fails with that reason.
    pub fn handle_decode_error(&mut self, e: DecodeError) -> ProtoError {
        match &self.error {
            Some(e) => e.clone(),
            None => self.fail(ProtoError::Decode(e)),
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the frames ready to go into `out`: every control frame, then Data within the
    /// peer's transport window, up to about `max` payload bytes. The driver encodes them
    /// ([`crate::Segments`]) outside any lock — after applying the [`Rekey`] returned, if any:
    /// it holds for the frames appended now and every later one.
    pub fn poll_transmit(&mut self, out: &mut Vec<Frame>, max: usize) -> Option<Rekey> {
        let first = out.len();
        self.out.take(out, max);
        if self.out.take_room_event() {
            self.events.push_back(Event::SendRoom);
        }
        if let Some(hs) = self.hs.as_mut().filter(|h| h.ticket.is_some()) {
            // 0-RTT frames: kept until the acceptor accepts the ticket, to be sent again
            // after a full Auth if it refuses it.
            hs.early
                .extend(out[first..].iter().filter(|f| !f.is_handshake()).cloned());
        }
        self.pending_send.take().map(Rekey)
    }

    /// Encodes everything ready to go into `out` (tests and simple drivers).
    pub fn transmit(&mut self, out: &mut BytesMut) {
        let mut frames = Vec::new();
        if let Some(k) = self.poll_transmit(&mut frames, usize::MAX) {
            self.encoder.rekey(k);
        }
        for f in &frames {
            self.encoder.push(f);
        }
        out.extend_from_slice(&self.encoder.to_bytes());
        self.encoder.clear();
    }

    pub fn wants_transmit(&self) -> bool {
        self.out.wants_transmit()
    }

    /// False while we hold more control frames for the peer than [`MAX_CONTROL_BACKLOG`]: the
    /// driver then stops reading it until they are written, so a peer that floods us and never
    /// reads cannot make us queue without bound.
    pub fn wants_input(&self) -> bool {
        self.out.control_backlog() < MAX_CONTROL_BACKLOG
    }

    /// When [`Connection::handle_timeout`] must next be called; `None` after a fatal error.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        if !self.is_established() {
            return self.created.checked_add(self.config.handshake_timeout);
        }
        match (self.next_ping, self.dead_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends pings and detects a dead peer or a handshake that takes too long.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ProtoError> {
        self.check_alive()?;
        if !self.is_established() {
            let deadline = self.created.checked_add(self.config.handshake_timeout);
            if deadline.is_some_and(|d| now >= d) {
                return Err(self.fail(ProtoError::Handshake("timeout")));
            }
            return Ok(());
        }
        if self.dead_at().is_some_and(|d| now >= d) {
            let e = if self.wants_input() {
                ProtoError::DeadPeer
            } else {
                ProtoError::Flood
            };
            return Err(self.fail(e));
        }
        if let Some(at) = self.next_ping {
            if now >= at {
                let timepoint_us = now.saturating_duration_since(self.created).as_micros() as u64;
                self.out.push_control(Body::Ping(Ping { timepoint_us }));
                self.next_ping = now.checked_add(self.config.ping_interval);
            }
        }
        Ok(())
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// The peer, once the handshake is done.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// What the peer proved, once the handshake is done.
    pub fn trust(&self) -> Option<&Trust> {
        self.trust.as_ref()
    }

    /// Which of our shared secrets the peer's proof verified with, as
    /// [`crate::secret_fingerprint`] names it; `None` for a token, an anonymous or
    /// unauthenticated peer, and a resumption at the initiator. A reload that drops that secret
    /// from the list closes the transport: it no longer authenticates.
    pub fn verified_by(&self) -> Option<[u8; 8]> {
        self.verified_by
    }

    /// Whether the handshake resumed a ticket.
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// The latest round trip: from the handshake, then from each pong.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The fatal error, once there is one.
    pub fn error(&self) -> Option<&ProtoError> {
        self.error.as_ref()
    }

    /// Whether [`Connection::open`] would succeed: once established, and at an initiator
    /// from its Auth (or resuming Hello) on, for the first [`MAX_EARLY_STREAMS`] streams,
    /// which then ride the first flight.
    pub fn can_open(&self) -> bool {
        let state = match self.state {
            State::Established => true,
            State::AwaitAccept => self.streams.len() < MAX_EARLY_STREAMS,
            _ => false,
        };
        self.error.is_none() && state && !self.local_goaway && !self.peer_goaway
    }

    /// Tells the peer we take no new streams; open ones go on. Idempotent. During the
    /// handshake it is sent once established: the peer could not check it before.
    pub fn go_away(&mut self, reason: &str) {
        if self.error.is_some() || self.local_goaway {
            return;
        }
        self.local_goaway = true;
        self.goaway_reason = truncate(reason);
        if self.is_established() {
            self.send_goaway();
        }
    }

    pub(crate) fn send_goaway(&mut self) {
        let reason = std::mem::take(&mut self.goaway_reason);
        self.out.push_control(Body::GoAway(GoAway { reason }));
    }

    /// The driver found the peer not reading: what we may send has waited for its socket for
    /// the dead-peer delay. The connection fails as a flood.
    pub fn handle_peer_not_reading(&mut self) -> ProtoError {
        match &self.error {
            Some(e) => e.clone(),
            None => self.fail(ProtoError::Flood),
        }
    }

    /// This transport's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether either side said GoAway.
    pub fn is_going_away(&self) -> bool {
        self.local_goaway || self.peer_goaway
    }

    /// Live streams: opened and not yet stopped or reset.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Which end of the transport we are.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Data payload bytes queued and not yet handed to the driver.
    pub fn queued_bytes(&self) -> usize {
        self.out.queued_data()
    }

    /// Payload bytes held for the application: received and not released, over all streams.
    /// Never more than the transport window we granted.
    pub fn buffered_bytes(&self) -> u64 {
        u64::from(self.config.conn_window) - self.conn_recv_credit - self.conn_owed
    }

    pub(crate) fn check_alive(&self) -> Result<(), ProtoError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records a fatal error; only a GoAway naming it is left to transmit.
    pub(crate) fn fail(&mut self, e: ProtoError) -> ProtoError {
        self.out.clear();
        self.out.push_control(Body::GoAway(GoAway {
            reason: e.reason().to_owned(),
        }));
        self.next_ping = None;
        self.hs = None;
        self.error = Some(e.clone());
        e
    }

    fn dead_at(&self) -> Option<Instant> {
        if self.config.ping_interval.is_zero() {
            return None;
        }
        let silence = self
            .config
            .ping_interval
            .checked_mul(self.config.dead_after)?;
        self.last_recv.checked_add(silence)
    }

    /// Grants transport credit back once a quarter of the window is owed. Called for bytes the
    /// application released and for bytes we dropped (reset streams, stragglers).
    pub(crate) fn return_conn_credit(&mut self, n: u64) {
        self.conn_owed += n;
        if self.conn_owed == 0 || self.conn_owed < u64::from(self.config.conn_window / 4).max(1) {
            return;
        }
        // conn_owed never exceeds conn_window, a u32: it is carved out of the credit we granted.
        let credit = self.conn_owed.min(u64::from(u32::MAX)) as u32;
        self.conn_owed -= u64::from(credit);
        self.conn_recv_credit += u64::from(credit);
        self.out
            .push_control(Body::Window(Window { stream: 0, credit }));
    }
}

/// Cuts `s` to [`MAX_REASON_LEN`] bytes at a character boundary.
pub(crate) fn truncate(s: &str) -> String {
    crate::clip(s, MAX_REASON_LEN).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(200);
        let t = truncate(&s);
        assert_eq!(t.len(), MAX_REASON_LEN);
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn initiator_queues_hello_acceptor_waits() {
        let now = Instant::now();
        let i = Connection::new(Side::Initiator, Config::default(), [1; 32], now);
        let a = Connection::new(Side::Acceptor, Config::default(), [2; 32], now);
        assert!(i.wants_transmit());
        assert!(!a.wants_transmit());
        assert_eq!(a.poll_timeout(), Some(now + Duration::from_secs(5)));
        assert!(!i.can_open());
        assert_eq!(i.buffered_bytes(), 0);
    }
}
