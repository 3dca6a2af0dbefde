//! One slot's dial loop: dial the peer, run the transport until it ends, redial with backoff,
//! until the slot is retired (its pool shrank or stopped). A slot retired while its transport
//! runs drains it with a GoAway instead of closing it, so the sessions on it run to their end.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use busway_net::{dial, Backoff};
use busway_proto::Side;
use tokio::sync::{oneshot, watch};

use super::driver;
use super::pool::{lock, BusCtx, PeerPool, Phase};
use super::transport::Transport;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const STABLE_AFTER: Duration = Duration::from_secs(10);
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a slot was retired; what its transport's GoAway and the log say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retired {
    /// The pool was stopped: no service lists the peer any more.
    Removed,
    /// `connections_per_peer` was lowered.
    Surplus,
}

impl Retired {
    pub(crate) fn go_away(self) -> &'static str {
        match self {
            Retired::Removed => "peer removed from configuration",
            Retired::Surplus => "connections_per_peer lowered",
        }
    }
    pub(crate) fn log(self) -> &'static str {
        match self {
            Retired::Removed => "peer no longer used",
            Retired::Surplus => "connections_per_peer lowered",
        }
    }
}

/// Resolves once the slot is retired, with why; a pool that is gone retired it too.
async fn retirement(rx: &mut watch::Receiver<Option<Retired>>) -> Retired {
    match rx.wait_for(Option::is_some).await {
        Ok(r) => (*r).unwrap_or(Retired::Removed),
        Err(_) => Retired::Removed,
    }
}

/// Whether the slot is retired now.
fn retired_now(rx: &watch::Receiver<Option<Retired>>) -> Option<Retired> {
    let r = *rx.borrow();
    r.or_else(|| rx.has_changed().is_err().then_some(Retired::Removed))
}

pub(super) async fn dial_loop(
    pool: Weak<PeerPool>,
    slot: u64,
    mut retired: watch::Receiver<Option<Retired>>,
    ctx: Arc<BusCtx>,
) {
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        if retired_now(&retired).is_some() {
            return;
        }
        let Some(p) = pool.upgrade() else { return };
        let endpoint = p.endpoint.clone();
        let tickets = p.tickets.clone();
        // A retry after a failure stays down until it succeeds: sessions do not wait for a
        // peer that failed, only for one being dialled for the first time or after it was up.
        drop(p);
        let dialled = tokio::select! {
            r = dial(&endpoint, DIAL_TIMEOUT) => r,
            _ = retirement(&mut retired) => return,
        };
        match dialled {
            Ok(sock) => {
                let mut config = ctx.proto();
                if ctx.resumes() {
                    config.ticket = tickets.take();
                }
                let t = Transport::new(endpoint.to_string(), Side::Initiator, config);
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
                    on_ticket: ctx.resumes().then(|| {
                        let keep = tickets.clone();
                        let on: driver::OnTicket = Arc::new(move |t| keep.keep(t));
                        on
                    }),
                };
                let mut run = tokio::spawn(driver::run(sock, t.clone(), spec));
                let started = Instant::now();
                let up = est_rx.await.is_ok();
                if up {
                    if let Some(p) = pool.upgrade() {
                        p.set_phase(slot, Phase::Up);
                    }
                }
                // A slot retired while its transport runs drains it: the sessions on it finish.
                let mut drained = None;
                let ended = loop {
                    tokio::select! {
                        r = &mut run => break r,
                        why = retirement(&mut retired), if drained.is_none() => {
                            t.go_away(why.go_away());
                            drained = Some(why);
                        }
                    }
                };
                let (reason, routine) = match ended {
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
                if let Some(why) = drained.or_else(|| retired_now(&retired)) {
                    tracing::info!(peer = %endpoint, %reason, "transport closed; {}", why.log());
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
            _ = retirement(&mut retired) => return,
        }
    }
}
