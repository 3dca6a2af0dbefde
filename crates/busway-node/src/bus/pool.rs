//! Transports kept open to each peer.
//!
//! A pool dials `connections_per_peer` transports to one peer endpoint — one
//! [dial loop](super::dial) per slot — and keeps redialling each with the jittered
//! [`Backoff`](busway_net::Backoff) (100 ms doubling to 5 s, reset once a transport has lived
//! 10 s: nodes that lost the same peer do not all redial it in step), so a peer that comes back
//! is used again without any session paying for the dial. Sessions go to the usable transport
//! carrying the fewest streams.
//!
//! A pool is **up** while one of its transports is established and not draining, **pending**
//! while it has none but one is being dialled or handshaken, or a transport just closed and its
//! redial has not failed yet, and **down** once every dial loop's last attempt failed. Sessions
//! wait for a pending pool (CONTRACT 9.4: right after start, or while redialling) and skip a
//! down one, so a dead peer costs them nothing once it is known dead.
//!
//! A reload resizes pools ([`Pools::set_per_peer`]): new slots start dialling at once, and a
//! retired slot drains its transport (GoAway: no new sessions, open ones finish) instead of
//! cutting it, then ends its dial loop. Stopping a pool retires every slot the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use busway_net::EndpointAddr;
use busway_proto::OpenParams;
use tokio::sync::watch;

use super::dial::{dial_loop, Retired};
use super::stream::BusStream;
use super::tls::BusTls;
use super::transport::{Transport, Transports};
use crate::metrics::Metrics;

/// What every transport of a node shares.
#[derive(Debug)]
pub struct BusCtx {
    /// What new transports are made with. A reload replaces it (a new secret, new labels);
    /// established transports keep the one their handshake used.
    proto: RwLock<busway_proto::Config>,
    pub metrics: Arc<Metrics>,
    pub transports: Arc<Transports>,
    /// `[bus] resumption`: dials present a ticket of the peer's when they hold one.
    resume: std::sync::atomic::AtomicBool,
    /// `[bus.tls]` as last loaded; like `proto`, what new transports use.
    tls: RwLock<Option<Arc<BusTls>>>,
    /// `bus.max_transports`: accepted bus connections at once, handshaking or established.
    max_transports: AtomicU32,
    /// Accepted bus connections now: each [`Admitted`] holds one.
    accepted: AtomicU32,
    /// The host name a peer endpoint was configured under, for TLS's server name.
    peer_host: OnceLock<PeerHost>,
    /// The multi-link sessions this node accepted, for their other carriers to join.
    pub multis: Arc<super::multi::Registry>,
}

/// Finds the host name a peer endpoint was configured under (see [`BusCtx::peer_host`]).
pub struct PeerHost(pub Box<HostOf>);

/// Maps a peer's endpoint to the host name it was written with.
pub type HostOf = dyn Fn(&EndpointAddr) -> Option<String> + Send + Sync;

impl std::fmt::Debug for PeerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerHost")
    }
}

/// One accepted bus connection, counted against `max_transports` until dropped.
#[derive(Debug)]
pub struct Admitted(Arc<BusCtx>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.accepted.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BusCtx {
    pub fn new(
        proto: busway_proto::Config,
        metrics: Arc<Metrics>,
        transports: Arc<Transports>,
    ) -> BusCtx {
        BusCtx {
            proto: RwLock::new(proto),
            metrics,
            transports,
            resume: std::sync::atomic::AtomicBool::new(true),
            tls: RwLock::new(None),
            max_transports: AtomicU32::new(u32::MAX),
            accepted: AtomicU32::new(0),
            peer_host: OnceLock::new(),
            multis: Arc::default(),
        }
    }

    /// Whether dials resume with tickets (`[bus] resumption`).
    pub fn set_resume(&self, on: bool) {
        self.resume.store(on, Ordering::Relaxed);
    }

    pub fn resumes(&self) -> bool {
        self.resume.load(Ordering::Relaxed)
    }

    /// The settings for a transport made now.
    pub fn proto(&self) -> busway_proto::Config {
        self.proto.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Settings for the transports made from now on.
    pub fn set_proto(&self, proto: busway_proto::Config) {
        *self.proto.write().unwrap_or_else(|e| e.into_inner()) = proto;
    }

    /// The TLS of transports made now; `None` runs them in plaintext.
    pub fn tls(&self) -> Option<Arc<BusTls>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// TLS for the transports made from now on.
    pub fn set_tls(&self, tls: Option<Arc<BusTls>>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// A new `max_transports`; connections above it stay, new ones wait for room.
    pub fn set_max_transports(&self, n: u32) {
        self.max_transports.store(n, Ordering::Relaxed);
    }

    /// Counts a connection a bus listener accepted, unless `max_transports` are open already.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let max = self.max_transports.load(Ordering::Relaxed);
        self.accepted
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Admitted(self.clone()))
    }

    /// Accepted bus connections now, handshaking or established.
    pub fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Sets how dials find a peer's host name; the node does once, at start.
    pub fn set_peer_host(&self, f: PeerHost) {
        let _ = self.peer_host.set(f);
    }

    /// The host name `ep` was configured under, when some service lists it by name.
    pub fn peer_host(&self, ep: &EndpointAddr) -> Option<String> {
        self.peer_host.get().and_then(|f| (f.0)(ep))
    }
}

/// Where one dial loop stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Dialling, handshaking, or waiting to redial after a transport that was up closed.
    Connecting,
    Up,
    /// The last attempt failed; waiting to try again.
    Failed,
}

/// One dial loop's place in the pool.
#[derive(Debug)]
struct Slot {
    id: u64,
    phase: Phase,
    /// Set once the slot is retired; its dial loop then drains its transport and ends.
    retire: watch::Sender<Option<Retired>>,
}

/// What a session can expect of a pool now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolState {
    Up,
    Pending,
    Down,
}

#[derive(Debug)]
pub struct PeerPool {
    pub endpoint: EndpointAddr,
    live: Mutex<Vec<Arc<Transport>>>,
    /// The slots in service; a retired slot leaves at once, its dial loop soon after.
    slots: Mutex<Vec<Slot>>,
    next_slot: AtomicU64,
    /// The last dial failure, for logs and refusals.
    pub(super) last_error: Mutex<String>,
    /// Bumped whenever a transport or a phase changes, so waiting sessions look again.
    changed: watch::Sender<u64>,
    ctx: Arc<BusCtx>,
    /// Resumption tickets this peer issued to us.
    pub tickets: Arc<super::tickets::Tickets>,
}

impl PeerPool {
    /// Starts `n` dial loops towards `endpoint`, resuming with `held` tickets first.
    pub fn spawn(
        endpoint: EndpointAddr,
        n: u32,
        ctx: Arc<BusCtx>,
        held: Vec<busway_proto::Ticket>,
    ) -> Arc<PeerPool> {
        let pool = Arc::new(PeerPool {
            endpoint,
            live: Mutex::new(Vec::new()),
            slots: Mutex::new(Vec::new()),
            next_slot: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            changed: watch::channel(0).0,
            ctx,
            tickets: Arc::default(),
        });
        for t in held {
            pool.tickets.keep(t);
        }
        pool.resize(n);
        pool
    }

    /// Keeps `n` (at least 1) dial loops: starts the missing ones, retires the surplus — the
    /// slots without an established transport first, then the newest — whose transports drain.
    pub fn resize(self: &Arc<Self>, n: u32) {
        let n = n.max(1) as usize;
        {
            let mut slots = lock(&self.slots);
            while slots.len() < n {
                let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
                let (retire, retired) = watch::channel(None);
                slots.push(Slot {
                    id,
                    phase: Phase::Connecting,
                    retire,
                });
                tokio::spawn(dial_loop(
                    Arc::downgrade(self),
                    id,
                    retired,
                    self.ctx.clone(),
                ));
            }
            while slots.len() > n {
                let i = slots
                    .iter()
                    .rposition(|s| s.phase != Phase::Up)
                    .unwrap_or(slots.len() - 1);
                let _ = slots.remove(i).retire.send(Some(Retired::Surplus));
            }
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// True when some transport can take a new session.
    pub fn is_up(&self) -> bool {
        self.state() == PoolState::Up
    }

    pub fn state(&self) -> PoolState {
        if self.live().iter().any(|t| t.usable()) {
            return PoolState::Up;
        }
        let slots = lock(&self.slots);
        if slots.iter().any(|s| s.phase != Phase::Failed) {
            PoolState::Pending
        } else {
            PoolState::Down
        }
    }

    pub(super) fn live(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Transport>>> {
        lock(&self.live)
    }

    /// The established, not draining transport carrying the fewest streams.
    fn best(&self) -> Option<Arc<Transport>> {
        self.least_loaded(Transport::usable)
    }

    /// A transport still handshaking that already takes streams (they ride its handshake's
    /// last flight, or a resuming one's first), when none is established.
    fn early(&self) -> Option<Arc<Transport>> {
        self.least_loaded(Transport::takes_streams)
    }

    /// Among the live transports that `ok` accepts, the one carrying the fewest streams.
    fn least_loaded(&self, ok: impl Fn(&Transport) -> bool) -> Option<Arc<Transport>> {
        self.live()
            .iter()
            .filter(|t| ok(t))
            .min_by_key(|t| t.streams.load(Ordering::Relaxed))
            .cloned()
    }

    /// Bumped whenever a transport of the pool or a dial loop's phase changes.
    pub fn version(&self) -> u64 {
        *self.changed.borrow()
    }

    /// A transport was listed or moved on in its handshake: sessions waiting look again.
    pub(super) fn changed(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Records where slot `id` stands; a retired slot no longer counts.
    pub(super) fn set_phase(&self, id: u64, phase: Phase) {
        if let Some(s) = lock(&self.slots).iter_mut().find(|s| s.id == id) {
            s.phase = phase;
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Waits until the pool is no longer pending, or `deadline`; returns its state then.
    pub async fn settled(&self, deadline: tokio::time::Instant) -> PoolState {
        let mut changed = self.changed.subscribe();
        loop {
            let state = self.state();
            if state != PoolState::Pending {
                return state;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return PoolState::Pending;
            }
        }
    }

    /// Opens a stream on the least-loaded usable transport, waiting up to `deadline` while the
    /// pool is pending. With more than one slot and multilink on both ends, the session spreads
    /// over every transport of the pool ([`super::multi`]).
    pub async fn open(
        self: &Arc<Self>,
        params: OpenParams,
        deadline: tokio::time::Instant,
    ) -> Result<BusStream, String> {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(t) = self.best() {
                let opened = if self.size() > 1 && t.multilink() {
                    super::multi::open(self, &t, params.clone())
                } else {
                    t.open(params.clone())
                };
                match opened {
                    Ok(s) => return Ok(s),
                    // It closed or began draining since we looked: look again.
                    Err(e) => {
                        tracing::debug!(peer = %self.endpoint, error = %e, "transport refused an open")
                    }
                }
                t.set_going_away();
                continue;
            }
            // None established: a session waiting for a transport being dialled rides its
            // handshake (CONTRACT 9.4, 10). One that cannot (the early windows are full) waits
            // for the handshake to end like any other.
            if let Some(t) = self.early() {
                if let Ok(s) = t.open(params.clone()) {
                    return Ok(s);
                }
            }
            if self.state() == PoolState::Down {
                return Err(format!(
                    "peer {} is down: {}",
                    self.endpoint,
                    lock(&self.last_error)
                ));
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(format!("no transport to {} came up in time", self.endpoint));
            }
        }
    }

    /// Stops redialling; open transports drain: they go on until their sessions end.
    pub fn stop(&self) {
        for s in lock(&self.slots).drain(..) {
            let _ = s.retire.send(Some(Retired::Removed));
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Slots in service (`connections_per_peer`, unless the pool was stopped).
    pub fn size(&self) -> usize {
        lock(&self.slots).len()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node's pools, one per peer endpoint, made on first use.
#[derive(Debug)]
pub struct Pools {
    ctx: Arc<BusCtx>,
    /// `connections_per_peer`; a reload changes it.
    per_peer: AtomicU32,
    map: Mutex<HashMap<EndpointAddr, Arc<PeerPool>>>,
    /// Tickets saved by the last clean stop, by peer, handed to each pool as it is made.
    held: Mutex<super::held::Held>,
}

impl Pools {
    pub fn new(ctx: Arc<BusCtx>, per_peer: u32) -> Pools {
        Pools {
            ctx,
            per_peer: AtomicU32::new(per_peer),
            map: Mutex::new(HashMap::new()),
            held: Mutex::default(),
        }
    }

    /// Tickets a clean stop saved: each peer's pool resumes with them when it is made.
    pub fn set_held(&self, held: super::held::Held) {
        *lock(&self.held) = held;
    }

    /// Every pool's tickets still inside their lifetime, for a clean stop to save.
    pub fn live_tickets(&self) -> Vec<(String, Vec<(busway_proto::Ticket, std::time::Duration)>)> {
        lock(&self.map)
            .iter()
            .map(|(ep, p)| (ep.to_string(), p.tickets.live()))
            .filter(|(_, t)| !t.is_empty())
            .collect()
    }

    pub fn get(&self, ep: &EndpointAddr) -> Arc<PeerPool> {
        let mut m = lock(&self.map);
        m.entry(ep.clone())
            .or_insert_with(|| {
                let n = self.per_peer.load(Ordering::Relaxed);
                let held = lock(&self.held).remove(&ep.to_string()).unwrap_or_default();
                PeerPool::spawn(ep.clone(), n, self.ctx.clone(), held)
            })
            .clone()
    }

    pub fn is_up(&self, ep: &EndpointAddr) -> bool {
        self.state(ep) == PoolState::Up
    }

    /// The pool's state; a peer with no pool yet is pending (it is dialled on first use).
    pub fn state(&self, ep: &EndpointAddr) -> PoolState {
        lock(&self.map)
            .get(ep)
            .map_or(PoolState::Pending, |p| p.state())
    }

    /// Stops the pools whose endpoint `keep` rejects (after a reload or a DNS change removed
    /// them).
    pub fn retain(&self, keep: impl Fn(&EndpointAddr) -> bool) {
        let mut m = lock(&self.map);
        m.retain(|ep, pool| {
            let k = keep(ep);
            if !k {
                pool.stop();
            }
            k
        });
    }

    /// Forgets every resumption ticket of every peer.
    pub fn clear_tickets(&self) {
        lock(&self.held).clear();
        for p in lock(&self.map).values() {
            p.tickets.clear();
        }
    }

    /// Applies a new `connections_per_peer` to every pool and to those made later.
    pub fn set_per_peer(&self, n: u32) {
        // Stored before the map is locked: a pool made meanwhile either reads the new value or
        // is already in the map, and is resized below.
        self.per_peer.store(n, Ordering::Relaxed);
        for p in lock(&self.map).values() {
            p.resize(n);
        }
    }

    pub fn ctx(&self) -> &Arc<BusCtx> {
        &self.ctx
    }
}
