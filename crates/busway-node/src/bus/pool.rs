//! Transports kept open to each peer.
//!
//! A pool dials `connections_per_peer` transports to one peer endpoint and keeps redialling each
//! with the jittered [`Backoff`] (100 ms doubling to 5 s, reset once a transport has lived 10 s:
//! nodes that lost the same peer do not all redial it in step), so a peer that
//! comes back is used again without any session paying for the dial. Sessions go to the usable
//! transport carrying the fewest streams.
//!
//! A pool is **up** while one of its transports is established and not draining, **pending**
//! while it has none but one is being dialled or handshaken, or a transport just closed and its
//! redial has not failed yet, and **down** once every dial loop's last attempt failed. Sessions
//! wait for a pending pool (CONTRACT 9.4: right after start, or while redialling) and skip a
//! down one, so a dead peer costs them nothing once it is known dead.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use busway_net::{dial, Backoff, EndpointAddr};
use busway_proto::{OpenParams, Side};
use tokio::sync::{oneshot, watch};

use super::driver;
use super::stream::BusStream;
use super::transport::{Transport, Transports};
use crate::metrics::Metrics;

/// What every transport of a node shares.
#[derive(Debug)]
pub struct BusCtx {
    pub proto: busway_proto::Config,
    pub metrics: Arc<Metrics>,
    pub transports: Arc<Transports>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const STABLE_AFTER: Duration = Duration::from_secs(10);
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Where one dial loop stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Dialling, handshaking, or waiting to redial after a transport that was up closed.
    Connecting,
    Up,
    /// The last attempt failed; waiting to try again.
    Failed,
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
    phases: Mutex<Vec<Phase>>,
    /// The last dial failure, for logs and refusals.
    last_error: Mutex<String>,
    /// Bumped whenever a transport or a phase changes, so waiting sessions look again.
    changed: watch::Sender<u64>,
    stopped: watch::Sender<bool>,
}

impl PeerPool {
    /// Starts `n` dial loops towards `endpoint`.
    pub fn spawn(endpoint: EndpointAddr, n: u32, ctx: Arc<BusCtx>) -> Arc<PeerPool> {
        let n = n.max(1) as usize;
        let pool = Arc::new(PeerPool {
            endpoint,
            live: Mutex::new(Vec::new()),
            phases: Mutex::new(vec![Phase::Connecting; n]),
            last_error: Mutex::new(String::new()),
            changed: watch::channel(0).0,
            stopped: watch::channel(false).0,
        });
        for slot in 0..n {
            tokio::spawn(dial_loop(Arc::downgrade(&pool), slot, ctx.clone()));
        }
        pool
    }

    /// True when some transport can take a new session.
    pub fn is_up(&self) -> bool {
        self.state() == PoolState::Up
    }

    pub fn state(&self) -> PoolState {
        if self.live().iter().any(|t| t.usable()) {
            return PoolState::Up;
        }
        let phases = lock(&self.phases);
        if phases.iter().any(|p| *p != Phase::Failed) {
            PoolState::Pending
        } else {
            PoolState::Down
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Transport>>> {
        lock(&self.live)
    }

    fn best(&self) -> Option<Arc<Transport>> {
        self.live()
            .iter()
            .filter(|t| t.usable())
            .min_by_key(|t| t.streams.load(Ordering::Relaxed))
            .cloned()
    }

    fn set_phase(&self, slot: usize, phase: Phase) {
        lock(&self.phases)[slot] = phase;
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
    /// pool is pending.
    pub async fn open(
        &self,
        params: OpenParams,
        deadline: tokio::time::Instant,
    ) -> Result<BusStream, String> {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(t) = self.best() {
                match t.open(params.clone()) {
                    Ok(s) => return Ok(s),
                    // It closed or began draining since we looked: look again.
                    Err(e) => {
                        tracing::debug!(peer = %self.endpoint, error = %e, "transport refused an open")
                    }
                }
                t.set_going_away();
                continue;
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

    /// Stops redialling; open transports go on until their sessions end.
    pub fn stop(&self) {
        let _ = self.stopped.send(true);
        for t in self.live().iter() {
            t.go_away("peer removed from configuration");
        }
    }
}

async fn dial_loop(pool: Weak<PeerPool>, slot: usize, ctx: Arc<BusCtx>) {
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        let Some(p) = pool.upgrade() else { return };
        if *p.stopped.borrow() {
            return;
        }
        let endpoint = p.endpoint.clone();
        let mut stopped = p.stopped.subscribe();
        // A retry after a failure stays down until it succeeds: sessions do not wait for a
        // peer that failed, only for one being dialled for the first time or after it was up.
        drop(p);
        match dial(&endpoint, DIAL_TIMEOUT).await {
            Ok(sock) => {
                let t = Transport::new(endpoint.to_string(), Side::Initiator, ctx.proto.clone());
                ctx.transports.add(&t);
                // Listed before it is up, so the pool counts it as up the moment its handshake
                // completes: nobody sees an established transport the pool does not offer.
                if let Some(p) = pool.upgrade() {
                    p.live().push(t.clone());
                }
                let (est_tx, est_rx) = oneshot::channel();
                let spec = driver::Spec {
                    on_open: None,
                    metrics: ctx.metrics.clone(),
                    established: Some(est_tx),
                };
                let run = tokio::spawn(driver::run(sock, t.clone(), spec));
                let started = Instant::now();
                let up = est_rx.await.is_ok();
                if up {
                    if let Some(p) = pool.upgrade() {
                        p.set_phase(slot, Phase::Up);
                    }
                }
                let (reason, routine) = match run.await {
                    Ok(r) => (r.to_string(), r.is_routine()),
                    Err(e) => (e.to_string(), false),
                };
                if let Some(p) = pool.upgrade() {
                    p.live().retain(|x| !Arc::ptr_eq(x, &t));
                    // A transport that was up and closed: redial, and let sessions wait for it
                    // until that attempt fails.
                    p.set_phase(slot, if up { Phase::Connecting } else { Phase::Failed });
                    if !up {
                        *lock(&p.last_error) = reason.clone();
                    }
                }
                if *stopped.borrow() {
                    tracing::info!(peer = %endpoint, %reason, "transport closed; peer no longer used");
                    return;
                }
                if routine {
                    tracing::info!(peer = %endpoint, %reason, "transport closed; redialling");
                } else {
                    tracing::warn!(peer = %endpoint, %reason, "transport closed; redialling");
                }
                if started.elapsed() > STABLE_AFTER {
                    backoff.reset();
                }
            }
            Err(e) => {
                tracing::debug!(peer = %endpoint, error = %e, "cannot reach peer");
                if let Some(p) = pool.upgrade() {
                    *lock(&p.last_error) = e.to_string();
                    p.set_phase(slot, Phase::Failed);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stopped.changed() => return,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node's pools, one per peer endpoint, made on first use.
#[derive(Debug)]
pub struct Pools {
    ctx: Arc<BusCtx>,
    per_peer: u32,
    map: Mutex<HashMap<EndpointAddr, Arc<PeerPool>>>,
}

impl Pools {
    pub fn new(ctx: Arc<BusCtx>, per_peer: u32) -> Pools {
        Pools {
            ctx,
            per_peer,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, ep: &EndpointAddr) -> Arc<PeerPool> {
        let mut m = lock(&self.map);
        m.entry(ep.clone())
            .or_insert_with(|| PeerPool::spawn(ep.clone(), self.per_peer, self.ctx.clone()))
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

    pub fn ctx(&self) -> &Arc<BusCtx> {
        &self.ctx
    }
}
