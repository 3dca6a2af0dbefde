//! One session from accept to close, in each of the three places a session starts:
//! - [`client_session`] for a client of a service's own listener: carried over the bus to a peer
//!   (ingress) or connected straight to a backend (direct L4 proxy);
//! - [`bus_session`] for a stream a peer opened (egress): connected to a backend.

use std::sync::Arc;
use std::time::Instant;

use busway_config::{ServiceConfig, Targets};
use busway_net::{dial, Conn, DialError, Endpoint, TargetSet};
use busway_proto::{OpenParams, ResetCode};

use crate::bus::driver::Opened;
use crate::node::Node;
use crate::pump::{pump, Abort, End};
use crate::service::ServiceState;
use crate::sessions::{new_id, SessionEntry, Ticket};

/// Serves a client accepted on one of `svc`'s listeners.
pub async fn client_session(node: Arc<Node>, svc: Arc<ServiceState>, conn: Conn, client: String) {
    let s = begin(&node, &svc, new_id(), client).await;
    let entry = &s.ticket.entry;
    let outcome = match &s.cfg.targets {
        Targets::Peers(_) => ingress(&node, &s, &conn).await,
        Targets::Backends(_) => match connect_backend(&s.cfg, &s.targets).await {
            Ok((backend, ep)) => {
                let (client, target) = (End::Sock(&conn), End::Sock(&backend));
                s.carry(&node, &ep, client, target).await
            }
            Err(e) => {
                tracing::warn!(service = %svc.name, session = %entry.id, error = %e, "no backend for the session");
                e.outcome()
            }
        },
    };
    svc.metrics.finished(outcome);
}

/// A session registered and its service's targets fresh.
struct Begun {
    ticket: Ticket,
    cfg: Arc<ServiceConfig>,
    targets: Arc<TargetSet>,
    started: Instant,
}

async fn begin(node: &Node, svc: &ServiceState, id: Arc<str>, client: String) -> Begun {
    let started = Instant::now();
    let cfg = svc.config();
    let ticket = node.sessions.register(
        id,
        svc.name.clone(),
        client,
        cfg.mode.as_str(),
        svc.metrics.clone(),
    );
    let targets = svc.targets();
    targets.refresh().await;
    Begun {
        ticket,
        cfg,
        targets,
        started,
    }
}

impl Begun {
    /// What every session does once it reached its target: count the set-up time, mark the
    /// target busy for `least-sessions`, and pump until the end.
    async fn carry(
        &self,
        node: &Node,
        ep: &Arc<Endpoint>,
        client: End<'_>,
        target: End<'_>,
    ) -> &'static str {
        let entry = &self.ticket.entry;
        node.metrics.setup.observe(self.started.elapsed());
        let _guard = ep.session_guard();
        entry.set_targets(vec![ep.addr.to_string()]);
        entry.set_state("open");
        finish(
            entry,
            pump(client, target, entry, self.cfg.idle_timeout).await,
        )
    }
}

/// Carries a client's session over the bus to one of the service's peers.
async fn ingress(node: &Node, s: &Begun, conn: &Conn) -> &'static str {
    let (cfg, targets, entry) = (&s.cfg, &s.targets, &s.ticket.entry);
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut wait = cfg.connect_timeout;
    loop {
        let ep = targets
            .pick(cfg.balance, &tried, |e| node.pools.is_up(&e.addr))
            .or_else(|| targets.pick(cfg.balance, &tried, |_| true));
        let Some(ep) = ep else {
            tracing::warn!(service = %cfg.name, session = %entry.id, "no peer can take the session");
            return "refused";
        };
        tried.push(ep.clone());
        let params = OpenParams {
            service: cfg.name.clone(),
            session_id: entry.id.to_string(),
            client: entry.client.clone(),
            mode: cfg.mode.as_str().to_string(),
            labels: Default::default(),
            hops: 0,
        };
        match node.pools.get(&ep.addr).open(params, wait).await {
            Ok((send, recv)) => {
                let (client, target) = (End::Sock(conn), End::Bus(send, recv));
                return s.carry(node, &ep, client, target).await;
            }
            Err(e) => {
                tracing::warn!(service = %cfg.name, peer = %ep.addr, error = %e, "cannot open a stream to the peer");
                wait = std::time::Duration::ZERO;
            }
        }
    }
}

/// Serves a stream a peer opened: connects the service's backend and pumps.
pub async fn bus_session(node: Arc<Node>, opened: Opened, pinned: Option<Arc<str>>) {
    let Opened { open, send, recv } = opened;
    let name: Arc<str> = pinned.unwrap_or_else(|| open.service.as_str().into());
    let svc = node
        .service(&name)
        .filter(|s| matches!(s.config().targets, Targets::Backends(_)));
    let Some(svc) = svc else {
        tracing::warn!(service = %name, peer = %send.transport().peer, "session for a service this node does not serve");
        send.reset(
            ResetCode::UnknownService,
            &format!("no service {name} here"),
        )
        .await;
        return;
    };
    let id = if !open.session_id.is_empty() && open.session_id.len() <= 64 {
        open.session_id.as_str().into()
    } else {
        new_id()
    };
    let client = format!(
        "{} via {}",
        truncate(&open.client, 128),
        send.transport().node()
    );
    let s = begin(&node, &svc, id, client).await;
    let entry = &s.ticket.entry;
    let outcome = match connect_backend(&s.cfg, &s.targets).await {
        Ok((backend, ep)) => {
            let (client, target) = (End::Bus(send, recv), End::Sock(&backend));
            s.carry(&node, &ep, client, target).await
        }
        Err(e) => {
            tracing::warn!(service = %svc.name, session = %entry.id, error = %e, "backend unreachable; resetting the stream");
            let code = match e {
                DialError::Refused(_) => ResetCode::Refused,
                DialError::Timeout(_) => ResetCode::Timeout,
                DialError::Io(..) => ResetCode::Unreachable,
            };
            send.reset(code, &e.to_string()).await;
            e.outcome()
        }
    };
    svc.metrics.finished(outcome);
}

/// Connects one healthy backend, trying others after a failure until `connect_timeout` is spent.
/// Every failed endpoint is ejected, so the next session does not try it again.
async fn connect_backend(
    cfg: &ServiceConfig,
    targets: &TargetSet,
) -> Result<(Conn, Arc<Endpoint>), DialError> {
    let deadline = Instant::now() + cfg.connect_timeout;
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut last = None;
    while let Some(ep) = targets.pick(cfg.balance, &tried, |e| e.is_up()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tried.push(ep.clone());
        match dial(&ep.addr, left).await {
            Ok(c) => return Ok((c, ep)),
            Err(e) => {
                ep.eject(&e.to_string(), cfg.connect_timeout);
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        let why = targets.problems().join("; ");
        let why = if why.is_empty() {
            "every target is down".to_string()
        } else {
            why
        };
        DialError::Io(
            format!("service {}", cfg.name),
            std::io::Error::new(std::io::ErrorKind::NotConnected, why),
        )
    }))
}

/// Logs an abnormal end and turns the result into an outcome label.
fn finish(entry: &SessionEntry, r: Result<(), Abort>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(a) => {
            tracing::debug!(session = %entry.id, service = %entry.service, reason = %a, "session ended");
            a.outcome()
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
