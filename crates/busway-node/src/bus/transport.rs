//! One transport, shared by its driver task and every session with a stream on it.
//!
//! The protocol state — every stream's buffers and credit — lives in one
//! [`busway_proto::Connection`] behind one short-held lock, with the wakers of whoever waits
//! on it (h2 and quinn share their connection the same way). A session's read, write, release
//! or reset is a direct call under the lock, so nothing mirrors the state and nothing can be
//! lost on the way: a handle's `Drop` stops its stream in place. After changing the state a
//! caller wakes the driver if there is something to send; the driver wakes sessions as frames
//! arrive. Wakers are woken after the lock is released.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use busway_proto::{Config, Connection, OpenParams, Side, Trust};
use serde::Serialize;

use super::stream::BusStream;

/// The wakers of one stream's two halves.
#[derive(Debug, Default)]
pub(crate) struct StreamWakers {
    pub read: Option<Waker>,
    pub write: Option<Waker>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub conn: Connection,
    pub wakers: busway_proto::idmap::IdMap<StreamWakers>,
    /// The driver's waker, to be woken when there is something to send.
    pub driver: Option<Waker>,
    /// Set when a caller woke the driver since its last poll: the driver then yields once, so
    /// that what other ready sessions write now leaves in the same syscall.
    pub driver_kicked: bool,
    /// The transport is gone, and why.
    pub closed: Option<Arc<str>>,
}

impl Inner {
    /// Wakes the driver if the connection has something to send; returns the waker to call
    /// once the lock is released.
    pub fn driver_to_wake(&mut self) -> Option<Waker> {
        if self.conn.wants_transmit() && !self.driver_kicked {
            self.driver_kicked = true;
            return self.driver.clone();
        }
        None
    }
}

/// A transport: its protocol state, and what the admin API and the pools see of it.
#[derive(Debug)]
pub struct Transport {
    inner: Mutex<Inner>,
    /// The other end's address as this node sees it.
    pub peer: String,
    node: Mutex<String>,
    state: Mutex<&'static str>,
    rtt_us: AtomicU64,
    /// Streams with a live handle: the pools' measure of load.
    pub streams: AtomicUsize,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    going_away: AtomicBool,
    /// Encoded bytes the driver holds and has not written yet.
    pub(crate) unsent: AtomicUsize,
    finished: AtomicBool,
    /// Set when the node ends the transport for what its peer no longer is (a token revoked
    /// or expired, a secret rotated out); the driver closes it at its next poll.
    revoked: Mutex<Option<&'static str>>,
}

/// The admin API's row for a transport (`GET /v1/peers`).
#[derive(Debug, Serialize)]
pub struct PeerView {
    pub peer: String,
    pub node: String,
    pub state: &'static str,
    pub rtt_ms: f64,
    pub sessions: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `secret`, `token` or `anonymous` (CONTRACT section 10); `null` while handshaking.
    pub trust: Option<&'static str>,
}

impl Transport {
    pub fn new(peer: String, side: Side, config: Config) -> Arc<Transport> {
        let now = tokio::time::Instant::now().into_std();
        let conn = Connection::new(side, config, rand::random(), now);
        Arc::new(Transport {
            inner: Mutex::new(Inner {
                conn,
                wakers: busway_proto::idmap::id_map(),
                driver: None,
                driver_kicked: false,
                closed: None,
            }),
            peer,
            node: Mutex::new(String::new()),
            state: Mutex::new("handshaking"),
            rtt_us: AtomicU64::new(0),
            streams: AtomicUsize::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            going_away: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            revoked: Mutex::new(None),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the shared state, then wakes the driver if it left something to send.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let (r, wake) = {
            let mut g = self.lock();
            let r = f(&mut g);
            (r, g.driver_to_wake())
        };
        if let Some(w) = wake {
            w.wake();
        }
        r
    }

    /// Opens a stream for a session.
    pub fn open(self: &Arc<Self>, params: OpenParams) -> Result<BusStream, String> {
        let id = self.with(|g| {
            if let Some(why) = &g.closed {
                return Err(format!("transport closed: {why}"));
            }
            g.conn.open(params).map_err(|e| e.to_string())
        })?;
        Ok(BusStream::new(self.clone(), id))
    }

    /// Drain: no new streams either way; open ones finish. The GoAway is queued in the
    /// connection itself, so it goes out with the next write whatever else is queued.
    pub fn go_away(&self, reason: &str) {
        self.with(|g| g.conn.go_away(reason));
        self.going_away.store(true, Ordering::Relaxed);
    }

    /// Established and not draining: may carry new sessions.
    pub fn usable(&self) -> bool {
        self.state() == "up" && !self.going_away.load(Ordering::Relaxed)
    }

    /// May take a new stream now: established and not draining, or an initiator whose
    /// handshake is far enough (its Auth or resuming Hello queued) that streams ride it, within
    /// the early windows (CONTRACT section 10, 0-RTT).
    pub fn takes_streams(&self) -> bool {
        if self.usable() {
            return true;
        }
        !self.going_away.load(Ordering::Relaxed) && self.state() == "handshaking" && {
            let g = self.lock();
            g.closed.is_none() && g.conn.can_open()
        }
    }

    /// The driver is done with the socket: everything was sent and the connection closed (or
    /// it failed).
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub(crate) fn set_finished(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Streams the connection still tracks (a handle holds them, or they have not ended).
    pub fn streams_open(&self) -> usize {
        self.lock().conn.stream_count()
    }

    /// Payload bytes held for this node's sessions: received, not yet released.
    pub fn buffered_bytes(&self) -> u64 {
        self.lock().conn.buffered_bytes()
    }

    /// What this transport holds in memory: payload received and not yet released by its
    /// sessions (at most the transport window it granted), and bytes its sessions wrote that
    /// are not yet in the socket (at most the send backlog plus the driver's output bound).
    pub fn buffered(&self) -> (u64, u64) {
        let g = self.lock();
        let out = g.conn.queued_bytes() + self.unsent.load(Ordering::Relaxed);
        (g.conn.buffered_bytes(), out as u64)
    }

    /// Encoded bytes the driver holds for the socket.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Relaxed)
    }

    pub(crate) fn set_going_away(&self) {
        self.going_away.store(true, Ordering::Relaxed);
    }

    pub fn set_node(&self, node: &str) {
        *self.node.lock().unwrap_or_else(|e| e.into_inner()) = node.to_string();
    }
    pub fn node(&self) -> String {
        self.node.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set_state(&self, s: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
    pub fn state(&self) -> &'static str {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn set_rtt(&self, d: Duration) {
        self.rtt_us.store(d.as_micros() as u64, Ordering::Relaxed);
    }
    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.load(Ordering::Relaxed))
    }

    /// Whether both ends announced multilink: sessions may have a carrier here.
    pub fn multilink(&self) -> bool {
        self.lock().conn.multilink()
    }

    /// Which end of the transport this node is.
    pub fn side(&self) -> Side {
        self.lock().conn.side()
    }

    /// What the peer proved, once established.
    pub fn trust(&self) -> Option<Trust> {
        self.lock().conn.trust().cloned()
    }

    /// Which of our secrets verified the peer ([`busway_proto::Connection::verified_by`]).
    pub fn verified_by(&self) -> Option<[u8; 8]> {
        self.lock().conn.verified_by()
    }

    /// Ends the transport because its peer's credential no longer holds: the driver closes it
    /// (and every session on it) at once, naming `why`.
    pub fn revoke(&self, why: &'static str) {
        *self.revoked.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        let waker = self.lock().driver.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn revoked(&self) -> Option<&'static str> {
        *self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn view(&self) -> PeerView {
        PeerView {
            peer: self.peer.clone(),
            node: self.node(),
            state: self.state(),
            rtt_ms: self.rtt().as_secs_f64() * 1000.0,
            sessions: self.streams.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            trust: self.trust().map(|t| t.label()),
        }
    }
}

/// Every live transport of the node, dialled or accepted.
#[derive(Debug, Default)]
pub struct Transports(Mutex<Vec<std::sync::Weak<Transport>>>);

impl Transports {
    /// Dead entries are swept when the list is full, not on every add: a flood of
    /// connections that fail their handshakes adds one each, and a sweep per add would cost
    /// each of them a pass over every transport the node holds. After a sweep there is room
    /// for at least as many adds as entries are live, so a sweep is paid for by the adds
    /// before it (O(1) amortised), and the list stays within about twice the most transports
    /// that were ever live at once.
    pub fn add(&self, t: &Arc<Transport>) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() == v.capacity() {
            v.retain(|w| w.strong_count() > 0);
            let live = v.len();
            v.reserve(live.max(16));
        }
        v.push(Arc::downgrade(t));
    }
    pub fn all(&self) -> Vec<Arc<Transport>> {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().filter_map(|w| w.upgrade()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_transports_are_swept_and_live_ones_kept() {
        let list = Transports::default();
        let live: Vec<_> = (0..10)
            .map(|i| Transport::new(format!("live-{i}"), Side::Acceptor, Config::default()))
            .collect();
        live.iter().for_each(|t| list.add(t));
        for i in 0..10_000 {
            let t = Transport::new(format!("gone-{i}"), Side::Acceptor, Config::default());
            list.add(&t);
        }
        assert_eq!(list.all().len(), 10);
        let held = list.0.lock().unwrap().capacity();
        assert!(
            held <= 64,
            "the list kept {held} slots for 11 live entries at most"
        );
    }
}
