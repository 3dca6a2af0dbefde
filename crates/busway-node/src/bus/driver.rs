//! The driver of one transport: the only task that touches its socket.
//!
//! It moves bytes between the socket and the shared [`busway_proto::Connection`] and wakes the
//! sessions whose streams can make progress. One poll function does everything — write what is
//! queued, read what arrived, fire the protocol's timer — with every I/O call non-blocking, so a
//! transport never blocks on a full socket while the peer waits for us to read (the classic
//! multiplexer deadlock). Frames are decoded and encoded outside the connection's lock; only
//! the state changes happen under it.
//!
//! Output is batched: what sessions queue is written with one vectored write per wakeup, and a
//! wakeup caused by a session yields once first, so the other sessions ready now add their frames
//! to the same write. Reading stops while the connection holds more control frames for the peer
//! than it keeps (`Connection::wants_input`): a peer that floods and never reads is bounded.
//!
//! It is generic over the socket, so tests run it over an in-memory pipe with paused time.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use busway_proto::{Decoder, Event, Frame, Open, ProtoError, Segments};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use super::stream::BusStream;
use super::transport::Transport;
use crate::metrics::Metrics;

/// A stream the peer opened, handed to the node's egress.
#[derive(Debug)]
pub struct Opened {
    pub open: Open,
    pub stream: BusStream,
}

/// Called for every stream the peer opens.
pub type OnOpen = Arc<dyn Fn(Opened) + Send + Sync>;

/// A fresh read buffer. Data payloads of 32 KiB or more stay slices of it, so a new one is
/// taken when it is used up — and the envelope cut at its end is copied into the new one. The
/// larger the buffer, the rarer that copy (about half an envelope per buffer); the smaller, the
/// less a slow stream's slice keeps alive (at most one buffer per 32 KiB slice). 256 KiB copies
/// about one byte in eight of a bulk transfer once.
const READ_BUF: usize = 256 * 1024;
/// The read buffer of a transport still handshaking, and the room it keeps free: a handshake
/// flight is a few hundred bytes (a resuming one with its 0-RTT frames grows the buffer as
/// they come). The full-sized buffer waits for the handshake's end, so a connection that never
/// proves anything — a flood of them — costs no 256 KiB allocation each.
const HANDSHAKE_BUF: usize = 4 * 1024;
/// Encoded bytes held for the socket above which no more frames are taken from the
/// connection: the socket's own buffer is the queue beyond that.
const OUT_HIGH: usize = 256 * 1024;
/// Pieces per vectored write.
const MAX_IOV: usize = 64;
/// Rounds of reading and writing per poll before the driver yields to other tasks.
const ROUNDS: usize = 16;
/// How long a drained transport waits for the peer's FIN after its own.
const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a transport ended.
#[derive(Debug, thiserror::Error)]
pub enum Closed {
    #[error("{0}")]
    Proto(#[from] ProtoError),
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("the peer closed the connection")]
    PeerClosed,
    /// A GoAway was said or heard and the last stream ended: nothing more can use it.
    #[error("drained: going away and no stream left")]
    Drained,
    /// The node ended it: the peer's token was revoked or expired, or the secret it proved
    /// was removed by a reload.
    #[error("closed by this node: {0}")]
    Revoked(&'static str),
}

impl Closed {
    /// Routine ends (a peer hanging up, a drain), as opposed to failures an operator must see.
    pub fn is_routine(&self) -> bool {
        matches!(self, Closed::PeerClosed | Closed::Drained)
    }

    /// A fixed word for the kind of end: the protocol's error label, or `io`, `peer_closed`,
    /// `drained`, `revoked`.
    pub fn label(&self) -> &'static str {
        match self {
            Closed::Proto(e) => e.reason(),
            Closed::Io(_) => "io",
            Closed::PeerClosed => "peer_closed",
            Closed::Drained => "drained",
            Closed::Revoked(_) => "revoked",
        }
    }
}

/// How to run one transport.
pub struct Spec {
    /// Where streams the peer opens go (`None`: refuse them).
    pub on_open: Option<OnOpen>,
    pub metrics: Arc<Metrics>,
    /// Told once the handshake is done.
    pub established: Option<oneshot::Sender<()>>,
    /// Given every resumption ticket the peer issues (a dialled transport's pool keeps them).
    pub on_ticket: Option<OnTicket>,
    /// Told once the transport takes streams, which at an initiator is before it is
    /// established (from its Auth, or its resuming Hello, on): a dialled transport's pool
    /// then lets waiting sessions ride the handshake.
    pub takes_streams: Option<Box<dyn FnOnce() + Send>>,
}

/// Called for every resumption ticket the peer hands us.
pub type OnTicket = Arc<dyn Fn(busway_proto::Ticket) + Send + Sync>;

struct Driver<S> {
    io: S,
    t: Arc<Transport>,
    spec: Spec,
    rbuf: BytesMut,
    /// The handshake is done: reads take the full-sized buffer.
    established: bool,
    /// The envelope checks, owned here so they run outside the connection's lock; the
    /// connection says when they change (keyed MACs after a proved handshake).
    dec: Decoder,
    out: Segments,
    frames: Vec<Frame>,
    timer: Pin<Box<tokio::time::Sleep>>,
    deadline: Option<Instant>,
    /// Yielded once for a session's wakeup and not polled since.
    yielded: bool,
    /// Since when output has waited for the socket without any of it being taken.
    stalled_since: Option<Instant>,
    /// How long that may last: the dead-peer delay (none when pings are off).
    stall_limit: Option<std::time::Duration>,
    /// Bytes were written since the socket was last flushed. A plain socket's flush does
    /// nothing; a TLS stream may hold records its socket did not take, which only a flush
    /// (or the next write) sends.
    unflushed: bool,
}

/// The clock of the transport: tokio's, so that tests with paused time see one consistent
/// clock in the connection's deadlines and the driver's timer.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs a transport until it ends; returns why. Every stream still open learns it.
pub async fn run<S>(io: S, t: Arc<Transport>, spec: Spec) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stall_limit = {
        let g = t.lock();
        let c = g.conn.config();
        Some(c.ping_interval.saturating_mul(c.dead_after.max(1))).filter(|d| !d.is_zero())
    };
    let mut d = Driver {
        io,
        stalled_since: None,
        stall_limit,
        t,
        spec,
        rbuf: BytesMut::with_capacity(HANDSHAKE_BUF),
        established: false,
        dec: Decoder::new(),
        out: Segments::default(),
        frames: Vec::new(),
        timer: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
        deadline: None,
        yielded: false,
        unflushed: false,
    };
    let reason = match poll_fn(|cx| d.poll(cx)).await {
        Ok(()) => Closed::PeerClosed,
        Err(e) => e,
    };
    d.finish(&reason).await;
    d.t.set_finished();
    reason
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        if let Some(why) = self.t.revoked() {
            return Poll::Ready(Err(Closed::Revoked(why)));
        }
        for _ in 0..ROUNDS {
            let (progress, wants_input) = self.exchange(cx)?;
            if self.drained() {
                return Poll::Ready(Err(Closed::Drained));
            }
            if progress.is_none() {
                // A session woke us: let the others that are ready queue their frames too.
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut moved = progress == Some(true);
            moved |= self.write(cx)?;
            if wants_input {
                match self.read(cx)? {
                    Some(true) => moved = true,
                    Some(false) => {}
                    None => return Poll::Ready(Ok(())),
                }
            }
            moved |= self.timer(cx)?;
            if !moved {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Under the lock: takes frames to send, hands out events, notes the deadline. `None` means
    /// "yield first" (a session kicked us and we have not yielded for it yet).
    fn exchange(&mut self, cx: &mut Context<'_>) -> Result<(Option<bool>, bool), Closed> {
        let mut wake: Vec<Waker> = Vec::new();
        let mut opened: Vec<(u64, Open)> = Vec::new();
        let mut established = None;
        let mut tickets = Vec::new();
        let mut rekey = None;
        let mut takes_streams = None;
        let (wants_input, deadline) = {
            let mut g = self.t.lock();
            if !g.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                g.driver = Some(cx.waker().clone());
            }
            if let Some(e) = g.conn.error() {
                // Failed outside the read path (a multi-link session found the peer's frames
                // impossible): what is left to send is its GoAway, written on the way out.
                return Err(Closed::Proto(e.clone()));
            }
            let kicked = std::mem::take(&mut g.driver_kicked);
            if kicked && !self.yielded {
                return Ok((None, false));
            }
            self.yielded = false;
            if self.out.len() < OUT_HIGH {
                let room = OUT_HIGH - self.out.len();
                rekey = g.conn.poll_transmit(&mut self.frames, room);
            }
            while let Some(ev) = g.conn.poll_event() {
                match ev {
                    Event::Readable { id } => {
                        if let Some(w) = g.wakers.get_mut(&id).and_then(|w| w.read.take()) {
                            wake.push(w);
                        }
                    }
                    Event::Writable { id } => {
                        if let Some(w) = g.wakers.get_mut(&id).and_then(|w| w.write.take()) {
                            wake.push(w);
                        }
                    }
                    Event::SendRoom => {
                        wake.extend(g.wakers.values_mut().filter_map(|w| w.write.take()));
                    }
                    Event::Opened { id, open } => opened.push((id, open)),
                    Event::Established {
                        peer,
                        rtt,
                        trust,
                        resumed,
                    } => {
                        self.t.set_node(&peer.node);
                        self.t.set_rtt(rtt);
                        self.t.set_state("up");
                        tracing::info!(peer = %self.t.peer, node = %busway_proto::clip(&peer.node, 128), rtt_us = rtt.as_micros() as u64, trust = trust.label(), resumed, "transport established");
                        established = Some(resumed);
                    }
                    Event::Ticket(t) => tickets.push(t),
                    Event::Rtt(d) => self.t.set_rtt(d),
                    Event::GoAway { reason } => {
                        tracing::info!(peer = %self.t.peer, reason = %busway_proto::clip(&reason, 128), "peer is going away");
                        self.t.set_going_away();
                    }
                }
            }
            if self.spec.takes_streams.is_some() && g.conn.can_open() {
                takes_streams = self.spec.takes_streams.take();
            }
            (g.conn.wants_input(), g.conn.poll_timeout())
        };
        wake.into_iter().for_each(Waker::wake);
        if let Some(told) = takes_streams {
            told();
        }
        if let Some(keep) = &self.spec.on_ticket {
            tickets.into_iter().for_each(|t| keep(t));
        }
        if let Some(resumed) = established {
            self.established = true;
            let kind = if resumed { "resumed" } else { "full" };
            self.spec.metrics.handshakes.inc(kind);
            if let Some(tx) = self.spec.established.take() {
                let _ = tx.send(());
            }
        }
        let took = !self.frames.is_empty();
        if let Some(k) = rekey {
            self.out.rekey(k);
        }
        for f in self.frames.drain(..) {
            self.out.push(&f);
        }
        self.t.unsent.store(self.out.len(), Ordering::Relaxed);
        for (id, open) in opened {
            let stream = BusStream::new(self.t.clone(), id);
            match &self.spec.on_open {
                Some(f) => f(Opened { open, stream }),
                None => stream.reset(
                    busway_proto::ResetCode::Refused,
                    "this node accepts no sessions here",
                ),
            }
        }
        let deadline = match (deadline, self.stall_deadline()) {
            (Some(d), Some(s)) => Some(d.min(s)),
            (d, s) => d.or(s),
        };
        if deadline != self.deadline {
            self.deadline = deadline;
            if let Some(at) = deadline {
                self.timer.as_mut().reset(at.into());
            }
        }
        Ok((Some(took), wants_input))
    }

    /// When output that waits for the socket makes the peer count as not reading.
    fn stall_deadline(&self) -> Option<Instant> {
        Some(self.stalled_since? + self.stall_limit?)
    }

    /// Said or heard GoAway, no stream left, nothing left to write: the transport is done.
    fn drained(&self) -> bool {
        if !self.out.is_empty() {
            return false;
        }
        let g = self.t.lock();
        g.conn.is_going_away() && g.conn.stream_count() == 0 && !g.conn.wants_transmit()
    }

    /// Writes as much of the output as the socket takes now; true if it took any.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, Closed> {
        let mut wrote = false;
        let pending = !self.out.is_empty();
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = self.out.io_slices(&mut slices);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Poll::Ready(Ok(n)) => {
                    self.out.advance(n);
                    self.t.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => break,
            }
        }
        if wrote {
            self.t.unsent.store(self.out.len(), Ordering::Relaxed);
            self.unflushed = true;
        }
        if self.unflushed && self.out.is_empty() {
            // Everything was handed to the socket: make sure it left (see `unflushed`). When
            // the socket is full, its readiness wakes us to try again.
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => {}
            }
        }
        if wrote || self.out.is_empty() {
            self.stalled_since = None;
        } else if pending && self.stalled_since.is_none() {
            self.stalled_since = Some(now());
            // Re-arm the timer so the stall limit is watched.
            self.deadline = None;
        }
        Ok(wrote)
    }

    /// Reads what arrived and feeds it to the connection: `Some(true)` if anything came,
    /// `None` at the peer's EOF.
    fn read(&mut self, cx: &mut Context<'_>) -> Result<Option<bool>, Closed> {
        let (room, size) = if self.established {
            (busway_proto::MAX_FRAME_LEN, READ_BUF)
        } else {
            (HANDSHAKE_BUF / 2, HANDSHAKE_BUF)
        };
        if self.rbuf.capacity() - self.rbuf.len() < room {
            if self.rbuf.is_empty() {
                // Nothing to carry over: a fresh buffer, and the old one lives on only in the
                // payloads sessions still hold.
                self.rbuf = BytesMut::with_capacity(size);
            } else {
                self.rbuf.reserve(size);
            }
        }
        let n = match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => return Ok(None),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Err(e.into()),
            Poll::Pending => return Ok(Some(false)),
        };
        self.t.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        loop {
            let mut failure = None;
            loop {
                match self.dec.decode(&mut self.rbuf) {
                    Ok(Some(f)) => self.frames.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let now = now();
            let mut g = self.t.lock();
            for f in self.frames.drain(..) {
                g.conn.handle_frame(f, now)?;
            }
            if let Some(e) = failure {
                return Err(g.conn.handle_decode_error(e).into());
            }
            if !self.dec.is_held() {
                return Ok(Some(true));
            }
            // A handshake frame: what follows it may need the key it just set up.
            g.conn.update_decoder(&mut self.dec);
        }
    }

    /// Fires the protocol's timer, or the stall limit, when due; true if it fired.
    fn timer(&mut self, cx: &mut Context<'_>) -> Result<bool, Closed> {
        if self.deadline.is_none() || self.timer.as_mut().poll(cx).is_pending() {
            return Ok(false);
        }
        let now = now();
        let mut g = self.t.lock();
        if self.stall_deadline().is_some_and(|d| now >= d) {
            // Bytes the peer's credit allowed have waited this long for its socket: it sends
            // and does not read (a legitimate peer always reads; its own pings would stop too).
            return Err(g.conn.handle_peer_not_reading().into());
        }
        g.conn.handle_timeout(now)?;
        // The next deadline is taken at the next exchange.
        self.deadline = None;
        Ok(true)
    }

    /// After the end: one last write (the GoAway naming a protocol failure), counts, and
    /// every stream told.
    async fn finish(&mut self, reason: &Closed) {
        let wakers: Vec<Waker> = {
            let mut g = self.t.lock();
            let mut last = Vec::new();
            if let Some(k) = g.conn.poll_transmit(&mut last, 0) {
                self.out.rekey(k);
            }
            for f in &last {
                self.out.push(f);
            }
            g.closed = Some(reason.to_string().into());
            g.driver = None;
            g.wakers
                .values_mut()
                .flat_map(|w| [w.read.take(), w.write.take()])
                .flatten()
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
        self.t.set_state("down");
        self.t.set_going_away();
        let last = self.out.to_bytes();
        // A drained transport closes gracefully: our last bytes, our FIN, then whatever the peer
        // still sends is read and dropped until its FIN. Closing with unread bytes in the receive
        // buffer would make the kernel reset the connection and drop what it had not sent yet.
        // Any other end is abrupt: one try at the GoAway that names the failure.
        let (linger, graceful) = match reason {
            Closed::Drained | Closed::PeerClosed => (LINGER, true),
            _ => (std::time::Duration::from_millis(100), false),
        };
        let _ = tokio::time::timeout(linger, async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = self.io.write_all(&last).await;
            let _ = self.io.shutdown().await;
            if graceful && !matches!(reason, Closed::PeerClosed) {
                let mut sink = [0u8; 16 * 1024];
                while matches!(self.io.read(&mut sink).await, Ok(n) if n > 0) {}
            }
        })
        .await;
        self.out.clear();
        self.t.unsent.store(0, Ordering::Relaxed);
        if let Closed::Proto(e) = reason {
            if e.is_handshake() {
                self.spec.metrics.handshake_failures.inc(e.reason());
            } else if !matches!(e, ProtoError::DeadPeer) {
                self.spec.metrics.frames_rejected.inc(e.reason());
            }
        }
    }
}
