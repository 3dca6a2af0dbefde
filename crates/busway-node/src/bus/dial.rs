//! One slot's dial loop: dial the peer, run the transport until it ends, redial with backoff,
//! until the slot is retired (its pool shrank or stopped). A slot retired while its transport
//! runs drains it with a GoAway instead of closing it, so the sessions on it run to their end.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use busway_net::tls;
use busway_net::{dial, Backoff, Conn, EndpointAddr};
use busway_proto::Side;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};

use super::driver;
use super::pool::{lock, BusCtx, PeerPool, Phase};
use super::tickets::Tickets;
use super::tls::BusTls;
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
        let ran = match dialled {
            Err(e) => {
                tracing::debug!(peer = %endpoint, error = %e, "cannot reach peer");
                failed(&pool, slot, e.to_string());
                None
            }
            // Two monomorphic runs rather than one over a socket enum: the plaintext driver
            // stays exactly what it was.
            Ok(sock) => match ctx.tls() {
                None => Some(
                    run(
                        sock,
                        ctx.proto(),
                        None,
                        &pool,
                        slot,
                        &mut retired,
                        &ctx,
                        &tickets,
                    )
                    .await,
                ),
                Some(tls) => {
                    let secured = tokio::select! {
                        r = secure(&tls, &ctx, &endpoint, sock) => r,
                        _ = retirement(&mut retired) => return,
                    };
                    match secured {
                        Ok((s, proto, binding)) => Some(
                            run(
                                s,
                                proto,
                                Some(binding),
                                &pool,
                                slot,
                                &mut retired,
                                &ctx,
                                &tickets,
                            )
                            .await,
                        ),
                        Err(why) => {
                            failed(&pool, slot, why);
                            None
                        }
                    }
                }
            },
        };
        match ran {
            Some(Ran::Retired) => return,
            Some(Ran::Closed { lived }) if lived > STABLE_AFTER => backoff.reset(),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = retirement(&mut retired) => return,
        }
    }
}

/// A dial or its TLS handshake failed: the slot is down until a redial succeeds.
fn failed(pool: &Weak<PeerPool>, slot: u64, why: String) {
    if let Some(p) = pool.upgrade() {
        *lock(&p.last_error) = why;
        p.set_phase(slot, Phase::Failed);
    }
}

/// Runs TLS on a dialled socket, within `handshake_timeout`, verifying the peer's certificate
/// against `ca` and the name of [`BusTls::server_name_for`]. Returns the socket and the
/// protocol settings for the bus handshake (its timeout cut to what TLS left) and the keying
/// material it exported, or why it failed, after counting and logging it.
async fn secure(
    tls: &BusTls,
    ctx: &BusCtx,
    endpoint: &EndpointAddr,
    sock: Conn,
) -> Result<(tls::ClientStream<Conn>, busway_proto::Config, tls::Binding), String> {
    let mut proto = ctx.proto();
    let Some(connector) = tls.connector.as_ref() else {
        // The configuration's validation requires `ca` on a node that dials.
        let why = "TLS: [bus.tls] has no ca to verify peers with".to_string();
        tracing::error!(peer = %endpoint, "{why}");
        return Err(why);
    };
    let host = ctx.peer_host(endpoint);
    let name = tls
        .server_name_for(endpoint, host.as_deref())
        .map_err(|e| {
            tracing::error!(peer = %endpoint, error = %e, "cannot dial over TLS");
            format!("TLS: {e}")
        })?;
    let deadline = tokio::time::Instant::now() + proto.handshake_timeout;
    let shown = name.to_str().into_owned();
    match tokio::time::timeout_at(deadline, tls::connect(connector, name, sock)).await {
        Err(_) => {
            // The listener counts its own timeout; here it is only why the slot is down.
            let why = format!(
                "TLS: no handshake within handshake_timeout ({:?})",
                proto.handshake_timeout
            );
            tracing::warn!(peer = %endpoint, "{why}");
            Err(why)
        }
        Ok(Err(f)) => {
            if f.detected_here {
                ctx.metrics.handshake_failures.inc("tls");
                tracing::warn!(peer = %endpoint, server_name = %shown, reason = "tls", detail = %f.reason, "TLS handshake with peer failed");
            } else {
                tracing::warn!(peer = %endpoint, server_name = %shown, detail = %f.reason, "TLS handshake with peer failed");
            }
            Err(format!("TLS: {}", f.reason))
        }
        Ok(Ok((s, binding))) => {
            proto.handshake_timeout = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_millis(1));
            Ok((s, proto, binding))
        }
    }
}

/// How a transport's run ended.
enum Ran {
    /// The slot was retired (the transport drained first, when it was up).
    Retired,
    /// It closed; it had been running for `lived`.
    Closed { lived: Duration },
}

/// Runs one dialled transport until it ends, keeping the pool's view of it up to date; a slot
/// retired meanwhile drains it with a GoAway so that the sessions on it run to their end. It
/// resumes with one of the peer's `tickets` when the node resumes, and keeps the ones the peer
/// hands it.
#[allow(clippy::too_many_arguments)]
async fn run<S>(
    io: S,
    mut proto: busway_proto::Config,
    binding: Option<tls::Binding>,
    pool: &Weak<PeerPool>,
    slot: u64,
    retired: &mut watch::Receiver<Option<Retired>>,
    ctx: &Arc<BusCtx>,
    tickets: &Arc<Tickets>,
) -> Ran
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(endpoint) = pool.upgrade().map(|p| p.endpoint.clone()) else {
        return Ran::Retired;
    };
    super::tls::bind_channel(&mut proto, binding);
    if ctx.resumes() {
        proto.ticket = tickets.take();
    }
    let t = Transport::new(endpoint.to_string(), Side::Initiator, proto);
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
        takes_streams: Some({
            let pool = pool.clone();
            Box::new(move || {
                if let Some(p) = pool.upgrade() {
                    p.changed();
                }
            })
        }),
    };
    let mut run = tokio::spawn(driver::run(io, t.clone(), spec));
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
            why = retirement(retired), if drained.is_none() => {
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
    if let Some(why) = drained.or_else(|| retired_now(retired)) {
        tracing::info!(peer = %endpoint, %reason, "transport closed; {}", why.log());
        return Ran::Retired;
    }
    if routine {
        tracing::info!(peer = %endpoint, %reason, "transport closed; redialling");
    } else {
        tracing::warn!(peer = %endpoint, %reason, "transport closed; redialling");
    }
    Ran::Closed {
        lived: started.elapsed(),
    }
}
