//! The connection state machine: one transport between two nodes, sans IO.
//!
//! The driver feeds received bytes to [`Connection::handle_input`] and the clock to
//! [`Connection::handle_timeout`], and takes out events ([`Connection::poll_event`]), bytes to
//! write ([`Connection::transmit`]) and the next deadline ([`Connection::poll_timeout`]). No
//! sockets and no clock of its own, so tests run two connections byte by byte with a fake
//! clock. Handshake frames are handled in `establish.rs`, later ones in `inbound.rs`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{decode, encoded_len};
use crate::config::{Config, OpenParams, PeerInfo, Side};
use crate::error::ProtoError;
use crate::event::Event;
use crate::frame::{Body, Data, Frame, GoAway, Open, Ping, Reset, Window};
use crate::handshake;
use crate::outbox::Outbox;
use crate::reset::ResetCode;
use crate::stream::{Stream, Streams};
use crate::{MAX_DATA_PAYLOAD, MAX_FRAME_LEN};

/// Most streams the peer may have open at once; beyond it Opens are refused, so a peer cannot
/// make us hold unbounded state.
pub const MAX_STREAMS: usize = 1 << 16;

/// Reset and GoAway reasons are cut to this many bytes: they are for humans and logs.
pub const MAX_REASON_LEN: usize = 256;

/// Worst-case bytes a Data frame adds around its payload (tags, varints, fin), used to keep
/// Data frames within the peer's `max_frame`.
pub(crate) const DATA_OVERHEAD: u32 = 32;

#[derive(Debug)]
pub(crate) enum State {
    /// Acceptor, before the peer's Hello.
    AwaitHello,
    /// Initiator, Hello queued at creation.
    AwaitWelcome,
    /// Acceptor, Welcome queued; the initiator still has to prove itself.
    AwaitAuth {
        welcome_sent: Instant,
        nonce_i: Bytes,
        peer: PeerInfo,
    },
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
    pub(crate) peer: Option<PeerInfo>,
    pub(crate) rtt: Option<Duration>,
    pub(crate) streams: Streams,
    pub(crate) out: Outbox,
    pub(crate) events: VecDeque<Event>,
    /// Payload bytes the peer may still send on the whole transport.
    pub(crate) conn_recv_credit: u64,
    /// Payload bytes handed to the application (or dropped) not yet granted back.
    conn_owed: u64,
    /// Largest payload we put in one Data frame, given the peer's `max_frame`.
    pub(crate) max_chunk: usize,
    pub(crate) local_goaway: bool,
    pub(crate) peer_goaway: bool,
    last_recv: Instant,
    pub(crate) next_ping: Option<Instant>,
    /// Set once a fatal error happened; every later call reports it again.
    error: Option<ProtoError>,
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
    /// A new transport. `nonce` must be fresh random bytes; the initiator queues its Hello now.
    pub fn new(side: Side, config: Config, nonce: [u8; 32], now: Instant) -> Connection {
        let mut conn = Connection {
            side,
            nonce,
            created: now,
            state: match side {
                Side::Initiator => State::AwaitWelcome,
                Side::Acceptor => State::AwaitHello,
            },
            peer: None,
            rtt: None,
            streams: Streams::new(side),
            out: Outbox::default(),
            events: VecDeque::new(),
            conn_recv_credit: config.conn_window.into(),
            conn_owed: 0,
            max_chunk: MAX_DATA_PAYLOAD,
            local_goaway: false,
            peer_goaway: false,
            last_recv: now,
            next_ping: None,
            error: None,
            config,
        };
        if side == Side::Initiator {
            let hello = handshake::hello(&conn.config, &conn.nonce);
            conn.out.push_control(Body::Hello(hello));
        }
        conn
    }

    /// Decodes and processes every complete frame in `buf`, leaving a partial one in place.
    /// An `Err` is fatal: close the transport (after one last [`Connection::transmit`], which
    /// tells the peer why in a GoAway).
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), ProtoError> {
        self.check_alive()?;
        loop {
            let frame = match decode(buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(ProtoError::Decode(e))),
            };
            self.last_recv = now;
            if let Err(e) = self.on_frame(frame, now) {
                return Err(self.fail(e));
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Data { data, .. } = &event {
            // Transport credit comes back as soon as the bytes leave us: it only caps what is
            // in flight, while the per-stream windows bound what the application buffers.
            self.return_conn_credit(data.len());
        }
        Some(event)
    }

    /// Appends every frame ready to go to `out`.
    pub fn transmit(&mut self, out: &mut BytesMut) {
        self.out.transmit(out);
    }

    pub fn wants_transmit(&self) -> bool {
        self.out.wants_transmit()
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
            return Err(self.fail(ProtoError::DeadPeer));
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

    /// The latest round trip: from the handshake, then from each pong.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether [`Connection::open_stream`] would succeed.
    pub fn can_open(&self) -> bool {
        self.error.is_none() && self.is_established() && !self.local_goaway && !self.peer_goaway
    }

    /// Opens a stream; returns its id and the bytes we may send on it before the peer grants
    /// more. An `Err` here is not fatal to the connection.
    pub fn open_stream(&mut self, p: OpenParams) -> Result<(u64, u32), ProtoError> {
        self.check_alive()?;
        if !self.can_open() {
            return Err(ProtoError::Protocol(
                "cannot open a stream: not established or going away".into(),
            ));
        }
        let send_credit = self.peer.as_ref().map_or(0, |p| p.stream_window);
        let open = Open {
            stream: self.streams.next_local_id(),
            service: p.service,
            session_id: p.session_id,
            client: p.client,
            mode: p.mode,
            labels: p.labels.into_iter().collect(),
            hops: p.hops,
        };
        let frame = Frame::new(Body::Open(open));
        if encoded_len(&frame) > self.peer_max_frame() {
            return Err(ProtoError::Protocol(
                "open frame larger than the peer accepts".into(),
            ));
        }
        let id = self
            .streams
            .open_local(Stream::new(send_credit, self.config.stream_window));
        if let Some(body) = frame.body {
            self.out.push_control(body);
        }
        Ok((id, send_credit))
    }

    /// Queues `data` on stream `id`, split into frames of at most [`MAX_DATA_PAYLOAD`] bytes.
    ///
    /// More than the stream's credit, or data after our fin, is a caller bug reported as
    /// `Err(Protocol)` without harming the connection. Unknown or closed ids are dropped
    /// silently: a reset from the peer may cross our send.
    pub fn send_data(&mut self, id: u64, mut data: Bytes, fin: bool) -> Result<(), ProtoError> {
        self.check_alive()?;
        let max_chunk = self.max_chunk;
        let Some(s) = self.streams.get_mut(id) else {
            return Ok(());
        };
        if s.send_fin {
            return Err(ProtoError::Protocol(format!(
                "data on stream {id} after fin"
            )));
        }
        let len = data.len() as u64;
        if len > s.send_credit {
            return Err(ProtoError::Protocol(format!(
                "{len} bytes on stream {id} with {} of credit",
                s.send_credit
            )));
        }
        if data.is_empty() && !fin {
            return Ok(());
        }
        s.send_credit -= len;
        loop {
            let payload = data.split_to(data.len().min(max_chunk));
            let last = data.is_empty();
            let offset = s.send_offset;
            s.send_offset += payload.len() as u64;
            self.out.push_data(Data {
                stream: id,
                offset,
                payload,
                fin: fin && last,
            });
            if last {
                break;
            }
        }
        if fin {
            s.send_fin = true;
            if s.is_done() {
                self.streams.remove(id);
            }
        }
        Ok(())
    }

    /// The application delivered `n` bytes of stream `id`: grant them back to the peer, in
    /// batches of a quarter window so Window frames stay rare.
    pub fn consume(&mut self, id: u64, n: usize) {
        if self.error.is_some() {
            return;
        }
        let window = self.config.stream_window;
        if let Some(credit) = self.streams.get_mut(id).and_then(|s| s.consume(n, window)) {
            self.out
                .push_control(Body::Window(Window { stream: id, credit }));
        }
    }

    /// Aborts stream `id` and forgets it; queued data for it is dropped.
    pub fn reset(&mut self, id: u64, code: ResetCode, reason: &str) {
        if self.error.is_some() || self.streams.remove(id).is_none() {
            return;
        }
        self.out.purge(id);
        self.out.push_control(Body::Reset(Reset {
            stream: id,
            code: code as u32,
            reason: truncate(reason),
        }));
    }

    /// Tells the peer we take no new streams; open ones go on. Idempotent.
    pub fn go_away(&mut self, reason: &str) {
        if self.error.is_some() || self.local_goaway {
            return;
        }
        self.local_goaway = true;
        self.out.push_control(Body::GoAway(GoAway {
            reason: truncate(reason),
        }));
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Which end of the transport we are.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Data payload bytes queued but held back by the peer's transport window.
    pub fn queued_bytes(&self) -> usize {
        self.out.queued_data()
    }

    fn check_alive(&self) -> Result<(), ProtoError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records a fatal error; only a GoAway naming it is left to transmit.
    fn fail(&mut self, e: ProtoError) -> ProtoError {
        self.out.clear();
        self.out.push_control(Body::GoAway(GoAway {
            reason: e.reason().to_owned(),
        }));
        self.next_ping = None;
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

    fn peer_max_frame(&self) -> usize {
        let peer = self
            .peer
            .as_ref()
            .map_or(MAX_FRAME_LEN as u32, |p| p.max_frame);
        (peer as usize).min(MAX_FRAME_LEN)
    }

    /// Grants transport credit back once a quarter of the window is owed.
    pub(crate) fn return_conn_credit(&mut self, n: usize) {
        self.conn_owed += n as u64;
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
fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_REASON_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(200);
        let t = truncate(&s);
        assert!(t.len() <= MAX_REASON_LEN);
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
    }
}
