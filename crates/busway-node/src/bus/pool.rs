//! Transports kept open to each peer.
//!
//! A pool dials `connections_per_peer` transports to one peer endpoint and keeps redialling each
//! with backoff (100 ms doubling to 5 s, reset once a transport has lived 10 s), so a peer that
//! comes back is used again without any session paying for the dial. Sessions go to the usable
//! transport carrying the fewest streams.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use busway_net::{dial, EndpointAddr};
use busway_proto::{OpenParams, Side};
use tokio::sync::{mpsc, oneshot, watch};

use super::driver::{self, Cmd, OpenRequest, CMD_QUEUE};
use super::info::{TransportInfo, Transports};
use super::stream::{BusRecv, BusSend};
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

#[derive(Debug)]
pub struct PeerPool {
    pub endpoint: EndpointAddr,
    live: Mutex<Vec<Arc<TransportInfo>>>,
    /// Bumped whenever a transport comes up, so waiting sessions can look again.
    changed: watch::Sender<u64>,
    stopped: watch::Sender<bool>,
}

impl PeerPool {
    /// Starts `n` dial loops towards `endpoint`.
    pub fn spawn(endpoint: EndpointAddr, n: u32, ctx: Arc<BusCtx>) -> Arc<PeerPool> {
        let pool = Arc::new(PeerPool {
            endpoint,
            live: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
            stopped: watch::channel(false).0,
        });
        for _ in 0..n.max(1) {
            tokio::spawn(dial_loop(Arc::downgrade(&pool), ctx.clone()));
        }
        pool
    }

    /// True when some transport can take a new session.
    pub fn is_up(&self) -> bool {
        self.live().iter().any(|t| t.usable())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Vec<Arc<TransportInfo>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn best(&self) -> Option<Arc<TransportInfo>> {
        self.live()
            .iter()
            .filter(|t| t.usable())
            .min_by_key(|t| t.streams.load(Ordering::Relaxed) + t.opening.load(Ordering::Relaxed))
            .cloned()
    }

    /// Opens a stream on the least-loaded usable transport, waiting up to `wait` for one.
    pub async fn open(
        &self,
        params: OpenParams,
        wait: Duration,
    ) -> Result<(BusSend, BusRecv), String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changed = self.changed.subscribe();
        let transport = loop {
            if let Some(t) = self.best() {
                break t;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(format!("no transport to {} is up", self.endpoint)),
            }
        };
        transport.opening.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let result = match transport
            .cmd
            .send(Cmd::Open(Box::new(OpenRequest { params, reply })))
            .await
        {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err("transport closed".to_string())),
            Err(_) => Err("transport closed".to_string()),
        };
        transport.opening.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Stops redialling; open transports go on until their sessions end.
    pub fn stop(&self) {
        let _ = self.stopped.send(true);
        for t in self.live().iter() {
            let _ = t.cmd.try_send(Cmd::GoAway {
                reason: "peer removed from configuration".into(),
            });
        }
    }
}

async fn dial_loop(pool: Weak<PeerPool>, ctx: Arc<BusCtx>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(p) = pool.upgrade() else { return };
        if *p.stopped.borrow() {
            return;
        }
        let endpoint = p.endpoint.clone();
        let mut stopped = p.stopped.subscribe();
        drop(p);
        match dial(&endpoint, DIAL_TIMEOUT).await {
            Ok(sock) => {
                let (tx, rx) = mpsc::channel(CMD_QUEUE);
                let info = TransportInfo::new(endpoint.to_string(), tx);
                ctx.transports.add(&info);
                let (est_tx, est_rx) = oneshot::channel();
                let run = tokio::spawn(driver::run(
                    sock,
                    driver::Spec {
                        side: Side::Initiator,
                        config: ctx.proto.clone(),
                        info: info.clone(),
                        on_open: None,
                        metrics: ctx.metrics.clone(),
                        established: Some(est_tx),
                    },
                    rx,
                ));
                let started = Instant::now();
                if est_rx.await.is_ok() {
                    if let Some(p) = pool.upgrade() {
                        p.live().push(info.clone());
                        p.changed.send_modify(|v| *v += 1);
                    }
                }
                let reason = match run.await {
                    Ok(r) => r.to_string(),
                    Err(e) => e.to_string(),
                };
                if let Some(p) = pool.upgrade() {
                    p.live().retain(|t| !Arc::ptr_eq(t, &info));
                }
                tracing::warn!(peer = %endpoint, %reason, "transport closed; redialling");
                if started.elapsed() > STABLE_AFTER {
                    backoff = FIRST_BACKOFF;
                }
            }
            Err(e) => tracing::debug!(peer = %endpoint, error = %e, "cannot reach peer"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
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
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(ep.clone())
            .or_insert_with(|| PeerPool::spawn(ep.clone(), self.per_peer, self.ctx.clone()))
            .clone()
    }

    pub fn is_up(&self, ep: &EndpointAddr) -> bool {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.get(ep).is_some_and(|p| p.is_up())
    }

    /// Stops the pools whose endpoint `keep` rejects (after a reload removed them).
    pub fn retain(&self, keep: impl Fn(&EndpointAddr) -> bool) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
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
