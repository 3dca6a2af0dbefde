//! One session from accept to close, in each of the three places a session starts:
//! - [`client_session`] for a client of a service's own listener: carried over the bus to a peer
//!   (ingress) or connected straight to a backend (direct L4 proxy);
//! - [`bus_session`] for a stream a peer opened (egress): connected to a backend.
//!
//! Both first pass the service's [limits](crate::limits), before anything is dialled.

use std::sync::Arc;
use std::time::Instant;

use busway_config::{Mode, ServiceConfig, Targets};
use busway_net::{dial, Conn, DialError, Endpoint, TargetSet};
use busway_proto::{OpenParams, ResetCode};

use crate::bus::driver::Opened;
use crate::bus::PoolState;
use crate::fanout::{fan_out, join_all, Target};
use crate::limits::{Admission, CAP};
use crate::metrics::Limit;
use crate::mirror::Mirrors;
use crate::node::Node;
use crate::pump::{pump, Abort, End};
use crate::service::ServiceState;
use crate::sessions::{new_id, SessionEntry, Ticket};

/// Serves a client accepted on one of `svc`'s listeners.
pub async fn client_session(node: Arc<Node>, svc: Arc<ServiceState>, conn: Conn, client: String) {
    let Some(_admitted) = admit_client(&node, &svc, &client) else {
        // Closed without a byte: the client reads EOF.
        drop(conn);
        return;
    };
    let s = begin(&node, &svc, new_id(), client).await;
    let entry = &s.ticket.entry;
    if let Some(gw) = svc.gateway() {
        let client = End::Sock(&conn);
        let serve =
            crate::grpc_session::serve(&node, &gw, entry, s.started, s.cfg.idle_timeout, client);
        // Boxed: the gateway's state machine would grow every other session's.
        svc.metrics.finished(Box::pin(serve).await);
        return;
    }
    let fan = s.cfg.mode != Mode::OneToOne;
    let outcome = match &s.cfg.targets {
        // Boxed: fan-out state is large and rare, and inline it would grow every session.
        Targets::Peers(_) if fan => Box::pin(ingress_fan(&node, &s, End::Sock(&conn))).await,
        Targets::Backends(_) if fan => Box::pin(backends_fan(&node, &s, End::Sock(&conn))).await,
        Targets::Peers(_) => ingress(&node, &s, &conn).await,
        Targets::Backends(_) => {
            // Boxed: balanced sessions are the owner's only, and inline they would grow every
            // session.
            let member = match lan_member(&node, &conn, &s) {
                Some(m) => Box::pin(to_member(&node, &s, &conn, m)).await,
                None => None,
            };
            match member {
                Some(outcome) => outcome,
                None => backend(&node, &s, &conn).await,
            }
        }
    };
    svc.metrics.finished(outcome);
}

/// Connects a client of the service's own listener to one of its backends and pumps.
async fn backend(node: &Node, s: &Begun, conn: &Conn) -> &'static str {
    match connect_backend(&s.cfg, &s.targets).await {
        Ok((backend, ep)) => {
            let (client, target) = (End::Sock(conn), End::Sock(&backend));
            s.carry(node, &ep, client, target).await
        }
        Err(e) => {
            tracing::warn!(service = %s.cfg.name, session = %s.ticket.entry.id, error = %e, "no backend for the session");
            e.outcome()
        }
    }
}

/// With `lan_balance`, the bus endpoint of the member that serves this client instead of this
/// node (see `cluster::lan`).
fn lan_member(node: &Node, conn: &Conn, s: &Begun) -> Option<busway_net::EndpointAddr> {
    node.cluster()?.lan_member(conn, &s.ticket.entry.client)
}

/// Carries a client of the service address over the bus to the member `lan_balance` chose.
/// `None` when no stream to it could be opened (its bus is down, or it did not come up within
/// `connect_timeout`): the session is then served here, since this node serves the service too.
async fn to_member(
    node: &Node,
    s: &Begun,
    conn: &Conn,
    member: busway_net::EndpointAddr,
) -> Option<&'static str> {
    if node.pools.state(&member) == PoolState::Down {
        return None;
    }
    let ep = Endpoint::new(member);
    let deadline = tokio::time::Instant::now() + s.cfg.connect_timeout;
    match node
        .pools
        .get(&ep.addr)
        .open(s.open_params(node, &ep), deadline)
        .await
    {
        Ok(stream) => Some(s.carry(node, &ep, End::Sock(conn), End::Bus(&stream)).await),
        Err(e) => {
            tracing::warn!(service = %s.cfg.name, member = %ep.addr, error = %e, "lan_balance: cannot reach the member; serving the session here");
            None
        }
    }
}

/// Admits a client of one of `svc`'s listeners under the service's limits, or counts and logs
/// its refusal.
fn admit_client(node: &Node, svc: &ServiceState, client: &str) -> Option<Admission> {
    match svc.limits.admit_client(&svc.config().limits, client) {
        Ok(a) => {
            if a.table_full {
                tracing::warn!(service = %svc.name, addresses = CAP, "the per-client table is full of active addresses; new addresses are admitted without per-client limits until some go idle");
            }
            Some(a.admission)
        }
        Err(limit) => {
            refused(node, svc, limit, &client);
            None
        }
    }
}

/// Admits a session a peer opened under the service's `max_sessions`, or resets its stream (so
/// the ingress closes its client) and counts and logs the refusal; `client` is the session's
/// client as this node lists it (`ADDRESS via NODE`).
fn admit_bus(
    node: &Node,
    svc: &ServiceState,
    stream: &crate::bus::BusStream,
    client: &str,
) -> Option<Admission> {
    match svc.limits.admit_bus(&svc.config().limits) {
        Ok(a) => Some(a),
        Err(limit) => {
            stream.reset(
                ResetCode::Refused,
                &format!("{limit} of service {} reached at {}", svc.name, node.name),
            );
            refused(node, svc, limit, &client);
            None
        }
    }
}

/// Counts a session refused by `limit` (outcome `refused`, and the limit's rejection) and logs
/// it at most once per second per limit and service.
fn refused(node: &Node, svc: &ServiceState, limit: Limit, who: &dyn std::fmt::Display) {
    svc.metrics.finished("refused");
    node.metrics
        .limit_refused(limit, &svc.name, "session", Some(who));
}

/// A session registered and its service's targets fresh.
struct Begun {
    ticket: Ticket,
    mirrors: Mirrors,
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
    // Boxed: a DNS lookup's state is large, and it is needed only once a TTL ran out.
    if targets.needs_refresh() {
        Box::pin(targets.refresh()).await;
    }
    let mirrors = if cfg.mirror.is_empty() {
        Mirrors::default()
    } else {
        Mirrors::start(&cfg.mirror, cfg.connect_timeout, svc.metrics.clone())
    };
    Begun {
        ticket,
        mirrors,
        cfg,
        targets,
        started,
    }
}

impl Begun {
    /// What the `Open` frame of this session's stream to `ep` carries: this node as the
    /// path's first, and the node `ep` reaches when discovery found it.
    fn open_params(&self, node: &Node, ep: &Endpoint) -> OpenParams {
        OpenParams {
            service: self.cfg.name.clone(),
            session_id: self.ticket.entry.id.to_string(),
            client: self.ticket.entry.client.clone(),
            mode: self.cfg.mode.as_str().to_string(),
            labels: Default::default(),
            path: vec![node.hop.to_string()],
            to: ep.to.as_deref().unwrap_or_default().to_string(),
        }
    }

    /// Runs a fan-out session over `targets` (reached through `used`), or refuses it if none.
    async fn fan(
        &self,
        node: &Node,
        client: End<'_>,
        targets: Vec<Target>,
        used: Vec<Arc<Endpoint>>,
    ) -> &'static str {
        let entry = &self.ticket.entry;
        if targets.is_empty() {
            tracing::warn!(service = %self.cfg.name, session = %entry.id, "no target of the fan-out could be reached");
            return "refused";
        }
        node.metrics.setup.observe(self.started.elapsed());
        let _guards: Vec<_> = used.iter().map(|e| e.session_guard()).collect();
        entry.set_targets(used.iter().map(|e| e.label()).collect());
        entry.set_state("open");
        let r = fan_out(
            client,
            targets,
            self.cfg.mode,
            entry,
            self.cfg.latch_timeout,
            &self.mirrors,
        )
        .await;
        finish(entry, r)
    }

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
        entry.set_targets(vec![ep.label()]);
        entry.set_state("open");
        finish(
            entry,
            pump(client, target, entry, self.cfg.idle_timeout, &self.mirrors).await,
        )
    }
}

/// Carries a client's session over the bus to one of the service's peers: one whose pool is up
/// if any, else one being dialled (waiting for it up to `connect_timeout`, CONTRACT 9.4); peers
/// known to be down are skipped, and another is tried while time is left.
async fn ingress(node: &Node, s: &Begun, conn: &Conn) -> &'static str {
    let (cfg, targets, entry) = (&s.cfg, &s.targets, &s.ticket.entry);
    let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    loop {
        let state = |e: &Endpoint| node.pools.state(&e.addr);
        let ep = targets
            .pick(cfg.balance, &tried, |e| state(e) == PoolState::Up)
            .or_else(|| targets.pick(cfg.balance, &tried, |e| state(e) == PoolState::Pending));
        let Some(ep) = ep else {
            tracing::warn!(service = %cfg.name, session = %entry.id, "no peer can take the session");
            return "refused";
        };
        tried.push(ep.clone());
        match node
            .pools
            .get(&ep.addr)
            .open(s.open_params(node, &ep), deadline)
            .await
        {
            Ok(stream) => {
                let (client, target) = (End::Sock(conn), End::Bus(&stream));
                return s.carry(node, &ep, client, target).await;
            }
            Err(e) => {
                tracing::warn!(service = %cfg.name, peer = %ep.addr, error = %e, "cannot open a stream to the peer");
                if tokio::time::Instant::now() >= deadline {
                    return "timeout";
                }
            }
        }
    }
}

/// Serves a stream a peer opened: connects the service's backend and pumps.
pub async fn bus_session(node: Arc<Node>, opened: Opened, pinned: Option<Arc<str>>) {
    let Opened { open, stream } = opened;
    if crate::relay::refuse_loop(&node, &open, &stream) {
        return;
    }
    if pinned.is_none() && crate::relay::carries_on(&node, &open) {
        // Boxed: a relayed session's state is rare, and inline it would grow every session.
        Box::pin(crate::relay::carry_on(node, open, stream)).await;
        return;
    }
    // The Open frame is read here and dropped: kept across the awaits below it would sit in
    // every session's state for its whole life.
    let Some((svc, id, client)) = admit(&node, open, pinned, &stream) else {
        return;
    };
    let Some(_admitted) = admit_bus(&node, &svc, &stream, &client) else {
        return;
    };
    let s = begin(&node, &svc, id, client).await;
    let entry = &s.ticket.entry;
    if let Some(gw) = svc.gateway() {
        let client = End::Bus(&stream);
        let serve =
            crate::grpc_session::serve(&node, &gw, entry, s.started, s.cfg.idle_timeout, client);
        svc.metrics.finished(Box::pin(serve).await);
        return;
    }
    if s.cfg.mode != Mode::OneToOne {
        let outcome = Box::pin(backends_fan(&node, &s, End::Bus(&stream))).await;
        svc.metrics.finished(outcome);
        return;
    }
    let outcome = match connect_backend(&s.cfg, &s.targets).await {
        Ok((backend, ep)) => {
            let (client, target) = (End::Bus(&stream), End::Sock(&backend));
            s.carry(&node, &ep, client, target).await
        }
        Err(e) => {
            tracing::warn!(service = %svc.name, session = %entry.id, error = %e, "backend unreachable; resetting the stream");
            let code = match e {
                DialError::Refused(_) => ResetCode::Refused,
                DialError::Timeout(_) => ResetCode::Timeout,
                DialError::Io(..) => ResetCode::Unreachable,
            };
            stream.reset(code, &e.to_string());
            e.outcome()
        }
    };
    svc.metrics.finished(outcome);
}

/// What a stream the peer opened becomes here: its service, its session id (the ingress's,
/// when it is a sane one) and the client as this node lists it; `None` (and the stream reset)
/// for a service this node does not serve.
fn admit(
    node: &Node,
    open: busway_proto::Open,
    pinned: Option<Arc<str>>,
    stream: &crate::bus::BusStream,
) -> Option<(Arc<ServiceState>, Arc<str>, String)> {
    if !open.to.is_empty() && *open.to != *node.key {
        let to = busway_proto::clip(&open.to, 128);
        tracing::warn!(%to, peer = %stream.transport().peer, "session for another node, and this node is no relay");
        stream.reset(
            ResetCode::Unreachable,
            &format!("this is {}, not {to}, and it relays nothing", node.key),
        );
        return None;
    }
    let name: Arc<str> = pinned.unwrap_or_else(|| open.service.as_str().into());
    let svc = node
        .service(&name)
        .filter(|s| matches!(s.config().targets, Targets::Backends(_)));
    let Some(svc) = svc else {
        let name = busway_proto::clip(&name, 128);
        tracing::warn!(service = %name, peer = %stream.transport().peer, "session for a service this node does not serve");
        stream.reset(
            ResetCode::UnknownService,
            &format!("no service {name} here"),
        );
        return None;
    };
    if !crate::trust::may_open(node, stream.transport(), &svc) {
        let trust = stream.transport().trust().map_or("none", |t| t.label());
        tracing::warn!(service = %svc.name, peer = %stream.transport().peer, node = %busway_proto::clip(&stream.transport().node(), 128), trust, "session refused: this transport may not open the service");
        stream.reset(
            ResetCode::Forbidden,
            &format!("trust level {trust} may not open {}", svc.name),
        );
        svc.metrics.finished("forbidden");
        return None;
    }
    let id: Arc<str> = if !open.session_id.is_empty() && open.session_id.len() <= 64 {
        open.session_id.as_str().into()
    } else {
        new_id()
    };
    let client = format!(
        "{} via {}",
        truncate(&open.client, 128),
        truncate(&stream.transport().node(), 128)
    );
    Some((svc, id, client))
}

/// A one-to-N session over the bus: one stream to every peer that is up once the pools being
/// dialled have settled (up to `connect_timeout`, CONTRACT 9.4), so a session right after start
/// or during a redial reaches every peer that comes up in time.
async fn ingress_fan(node: &Node, s: &Begun, client: End<'_>) -> &'static str {
    let deadline = tokio::time::Instant::now() + s.cfg.connect_timeout;
    let peers = s.targets.endpoints();
    let pools: Vec<_> = peers.iter().map(|ep| node.pools.get(&ep.addr)).collect();
    join_all(pools.iter().map(|p| p.settled(deadline))).await;
    let opens = pools.iter().zip(&peers).map(|(pool, ep)| {
        let params = s.open_params(node, ep);
        async move {
            if pool.state() != PoolState::Up {
                return Err(format!("peer {} is {:?}", pool.endpoint, pool.state()));
            }
            pool.open(params, deadline).await
        }
    });
    let mut targets = Vec::new();
    let mut used = Vec::new();
    for (ep, opened) in peers.iter().zip(join_all(opens).await) {
        match opened {
            Ok(stream) => {
                targets.push(Target::Bus(stream));
                used.push(ep.clone());
            }
            Err(e) => tracing::warn!(peer = %ep.addr, error = %e, "fan-out: cannot open a stream"),
        }
    }
    s.fan(node, client, targets, used).await
}

/// A one-to-N session to backends: every healthy backend, connected at once.
async fn backends_fan(node: &Node, s: &Begun, client: End<'_>) -> &'static str {
    let timeout = s.cfg.connect_timeout;
    let eps: Vec<Arc<Endpoint>> = s
        .targets
        .endpoints()
        .into_iter()
        .filter(|e| e.is_up())
        .collect();
    let dials = eps
        .iter()
        .map(|ep| async move { dial(&ep.addr, timeout).await });
    let mut targets = Vec::new();
    let mut used = Vec::new();
    for (ep, dialled) in eps.iter().zip(join_all(dials).await) {
        match dialled {
            Ok(c) => {
                targets.push(Target::Sock(c));
                used.push(ep.clone());
            }
            Err(e) => ep.eject(&e.to_string(), timeout),
        }
    }
    s.fan(node, client, targets, used).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use busway_config::{Address, Balance, BusConfig, DnsConfig, NodeConfig, NodeSection};
    use std::time::Duration;

    fn service(targets: Targets, mode: Mode) -> ServiceConfig {
        ServiceConfig {
            name: "s".into(),
            listen: vec![],
            targets,
            mode,
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_secs(1),
            latch_timeout: Duration::ZERO,
            health_check: None,
            idle_timeout: Duration::ZERO,
            mirror: vec![],
            grpc: None,
            limits: Default::default(),
        }
    }

    /// An idle session's memory is its task's state machine: these guard its size, so that a
    /// rarely used path (fan-out, set-up) cannot quietly grow every one-to-one session.
    #[tokio::test]
    async fn session_state_machines_stay_small() {
        let target = Address::Tcp {
            host: "127.0.0.1".into(),
            port: 9,
        };
        let cfg = NodeConfig {
            node: NodeSection {
                name: "n".into(),
                namespace: "default".into(),
                labels: Default::default(),
                annotations: Default::default(),
                shutdown_grace: Duration::from_secs(1),
                state_dir: None,
            },
            admin: None,
            bus: BusConfig::default(),
            dns: DnsConfig::default(),
            discovery: None,
            gateways: vec![],
            cluster: None,
            relay: Default::default(),
            services: vec![service(Targets::Backends(vec![target]), Mode::OneToOne)],
        };
        let (node, _) = Node::start(cfg).await.unwrap();
        let svc = node.service("s").unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = Conn::tcp(
            tokio::net::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap(),
        );
        let f = client_session(node.clone(), svc, c, "c".into());
        let size = std::mem::size_of_val(&f);
        let t = crate::bus::Transport::new(
            "p".into(),
            busway_proto::Side::Acceptor,
            busway_proto::Config::default(),
        );
        let opened = Opened {
            open: busway_proto::Open::default(),
            stream: crate::bus::BusStream::new(t, 2),
        };
        let b = bus_session(node.clone(), opened, None);
        let bus_size = std::mem::size_of_val(&b);
        eprintln!("client_session {size} bytes, bus_session {bus_size} bytes");
        assert!(size < 2048, "client_session state machine is {size} bytes");
        assert!(
            bus_size < 2048,
            "bus_session state machine is {bus_size} bytes"
        );
    }
}
