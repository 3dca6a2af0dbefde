//! A running node: binds everything its configuration names, serves, reloads and drains.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use busway_config::{Address, BusListener, NodeConfig, Secret, ServiceConfig, Targets};
use busway_net::{listener::remove_socket_file, Conn, Listener, Resolver};
use busway_proto::Side;

use crate::admin::prom::Exposition;
use crate::bus::driver::{self, OnOpen, Spec};
use crate::bus::pool::BusCtx;
use crate::bus::{Pools, Transport, Transports};
use crate::listen::{spawn_accept, ListenerHandle};
use crate::metrics::Metrics;
use crate::service::ServiceState;
use crate::session::{bus_session, client_session};
use crate::sessions::Sessions;

/// A listener the node could not bind: fatal at start (exit 1), rejected on reload.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(#[from] pub busway_net::BindError);

/// One `listening SERVICE URL` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    pub service: String,
    pub url: String,
}

type BusKey = (Address, Option<String>);

#[derive(Debug)]
pub struct Node {
    pub name: String,
    services: RwLock<HashMap<Arc<str>, Arc<ServiceState>>>,
    pub pools: Pools,
    pub transports: Arc<Transports>,
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<Metrics>,
    /// The registry `/metrics` encodes.
    pub(crate) exposition: Exposition,
    resolver: Resolver,
    bus_listeners: Mutex<HashMap<BusKey, ListenerHandle>>,
    admin_listener: Mutex<Option<ListenerHandle>>,
    admin_token: RwLock<Option<Secret>>,
    config: Mutex<NodeConfig>,
    /// Bumped after every applied reload.
    reloads: tokio::sync::watch::Sender<u64>,
}

/// Listeners bound but not yet serving.
struct Bound {
    services: Vec<(String, Address, Listener)>,
    bus: Vec<(BusKey, Listener)>,
}

impl Bound {
    /// Releases everything bound so far (removing socket files we created).
    fn abandon(self) {
        let all = self
            .services
            .into_iter()
            .map(|(_, _, l)| l)
            .chain(self.bus.into_iter().map(|(_, l)| l));
        for l in all {
            if let Some(p) = l.unix_path() {
                remove_socket_file(p);
            }
        }
    }
}

async fn bind_all<'a>(
    services: impl Iterator<Item = (&'a str, &'a Address)>,
    bus: impl Iterator<Item = &'a BusListener>,
) -> Result<Bound, StartError> {
    let mut bound = Bound {
        services: Vec::new(),
        bus: Vec::new(),
    };
    for (name, addr) in services {
        match Listener::bind(addr).await {
            Ok(l) => bound.services.push((name.to_string(), addr.clone(), l)),
            Err(e) => {
                bound.abandon();
                return Err(e.into());
            }
        }
    }
    for b in bus {
        match Listener::bind(&b.address).await {
            Ok(l) => bound.bus.push(((b.address.clone(), b.service.clone()), l)),
            Err(e) => {
                bound.abandon();
                return Err(e.into());
            }
        }
    }
    Ok(bound)
}

fn proto_config(cfg: &NodeConfig) -> busway_proto::Config {
    busway_proto::Config {
        node: cfg.node.name.clone(),
        namespace: cfg.node.namespace.clone(),
        labels: cfg.node.labels.clone(),
        secret: cfg
            .bus
            .secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec()),
        ..busway_proto::Config::default()
    }
}

impl Node {
    /// Binds every listener (failing before serving anything), then starts serving. Returns the
    /// node and its `listening` lines in order: services, bus, admin.
    pub async fn start(cfg: NodeConfig) -> Result<(Arc<Node>, Vec<Listening>), StartError> {
        if cfg.bus.secret.is_none() && !cfg.bus.listen.is_empty() {
            tracing::warn!("bus.secret is not set: peers are not authenticated");
        }
        let bound = bind_all(
            cfg.services
                .iter()
                .flat_map(|s| s.listen.iter().map(move |a| (s.name.as_str(), a))),
            cfg.bus.listen.iter(),
        )
        .await?;
        let admin = match &cfg.admin {
            Some(a) => match Listener::bind(&a.listen).await {
                Ok(l) => Some(l),
                Err(e) => {
                    bound.abandon();
                    return Err(e.into());
                }
            },
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let transports = Arc::new(Transports::default());
        let ctx = Arc::new(BusCtx {
            proto: proto_config(&cfg),
            metrics: metrics.clone(),
            transports: transports.clone(),
        });
        let resolver = Resolver::new(&cfg.dns);
        let node = Arc::new_cyclic(|me| Node {
            exposition: Exposition::new(&metrics, me.clone()),
            name: cfg.node.name.clone(),
            services: RwLock::new(HashMap::new()),
            pools: Pools::new(ctx, cfg.bus.connections_per_peer),
            transports,
            sessions: Arc::new(Sessions::default()),
            metrics,
            resolver,
            bus_listeners: Mutex::new(HashMap::new()),
            admin_listener: Mutex::new(None),
            admin_token: RwLock::new(cfg.admin.as_ref().and_then(|a| a.token.clone())),
            config: Mutex::new(cfg.clone()),
            reloads: tokio::sync::watch::channel(0).0,
        });
        for s in &cfg.services {
            node.add_service(s.clone());
        }
        let mut lines = node.serve(bound);
        if let Some(l) = admin {
            let url = l.local_url();
            let admin = crate::admin::Admin::new(node.clone());
            let h = spawn_accept(
                l,
                Arc::new(move |c, _| {
                    tokio::spawn(admin.clone().serve(c));
                }),
            );
            *node
                .admin_listener
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(h);
            lines.push(Listening {
                service: "admin".into(),
                url,
            });
        }
        node.warm_up().await;
        crate::peers::spawn(&node);
        Ok((node, lines))
    }

    fn add_service(&self, cfg: ServiceConfig) -> Arc<ServiceState> {
        let metrics = self.metrics.service(&cfg.name);
        let svc = ServiceState::new(cfg, &self.resolver, metrics);
        self.services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(svc.name.clone(), svc.clone());
        svc
    }

    /// Starts the accept loops of freshly bound listeners.
    fn serve(self: &Arc<Self>, bound: Bound) -> Vec<Listening> {
        let mut lines = Vec::new();
        for (name, addr, l) in bound.services {
            let Some(svc) = self.service(&name) else {
                continue;
            };
            let n = self.clone();
            let s = svc.clone();
            let h = spawn_accept(
                l,
                Arc::new(move |conn, client| {
                    tokio::spawn(client_session(n.clone(), s.clone(), conn, client));
                }),
            );
            lines.push(Listening {
                service: name,
                url: h.url.clone(),
            });
            svc.listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(addr, h);
        }
        for (key, l) in bound.bus {
            let n = self.clone();
            let pinned: Option<Arc<str>> = key.1.as_deref().map(Into::into);
            let h = spawn_accept(
                l,
                Arc::new(move |conn, client| n.accept_transport(conn, client, pinned.clone())),
            );
            lines.push(Listening {
                service: "bus".into(),
                url: h.url.clone(),
            });
            self.bus_listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, h);
        }
        lines
    }

    /// Resolves every target set and opens the transports to every peer, so that the first
    /// session does not pay for them.
    async fn warm_up(&self) {
        for svc in self.services() {
            let t = svc.targets();
            t.refresh().await;
            if matches!(svc.config().targets, Targets::Peers(_)) {
                for ep in t.endpoints() {
                    self.pools.get(&ep.addr);
                }
            }
        }
    }

    /// Runs the acceptor side of a transport a peer dialled.
    fn accept_transport(self: &Arc<Self>, conn: Conn, client: String, pinned: Option<Arc<str>>) {
        let t = Transport::new(client, Side::Acceptor, self.pools.ctx().proto.clone());
        self.transports.add(&t);
        let n = self.clone();
        let on_open: OnOpen = Arc::new(move |opened| {
            tokio::spawn(bus_session(n.clone(), opened, pinned.clone()));
        });
        let spec = Spec {
            on_open: Some(on_open),
            metrics: self.metrics.clone(),
            established: None,
        };
        tokio::spawn(async move {
            let reason = driver::run(conn, t.clone(), spec).await;
            let node = busway_proto::clip(&t.node(), 128).to_string();
            // A peer that hangs up after saying goodbye (or with nothing open) is routine; a
            // protocol, handshake or socket failure is what an operator must see.
            if reason.is_routine() {
                tracing::info!(peer = %t.peer, %node, %reason, "bus transport closed");
            } else {
                tracing::warn!(peer = %t.peer, %node, %reason, "bus transport closed");
            }
        });
    }

    pub fn service(&self, name: &str) -> Option<Arc<ServiceState>> {
        self.services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every service, sorted by name.
    pub fn services(&self) -> Vec<Arc<ServiceState>> {
        let mut v: Vec<_> = self
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn admin_token(&self) -> Option<Secret> {
        self.admin_token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a target of `svc` can take a session now.
    pub fn target_up(&self, svc: &ServiceState, ep: &busway_net::Endpoint) -> bool {
        match svc.config().targets {
            Targets::Peers(_) => self.pools.is_up(&ep.addr),
            Targets::Backends(_) => ep.is_up(),
        }
    }

    /// Why the node is not ready: one line per service without a usable target.
    pub fn readiness_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for svc in self.services() {
            if let Some(gw) = svc.gateway() {
                if let Some(why) = gw.problem() {
                    out.push(format!("service {}: {why}", svc.name));
                }
                continue;
            }
            let targets = svc.targets();
            let eps = targets.endpoints();
            if eps.iter().any(|e| self.target_up(&svc, e)) {
                continue;
            }
            let mut why = targets.problems();
            for e in &eps {
                let r = e.down_reason();
                why.push(if r.is_empty() {
                    format!("{} is not connected", e.addr)
                } else {
                    format!("{}: {r}", e.addr)
                });
            }
            out.push(format!(
                "service {}: no usable target: {}",
                svc.name,
                why.join("; ")
            ));
        }
        out
    }

    /// Applies a new configuration. New listeners are bound first; if one fails nothing changes.
    pub async fn reload(self: &Arc<Self>, new: NodeConfig) -> Result<(), String> {
        let old = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (what, changed) in [
            ("node.name", old.node.name != new.node.name),
            ("bus.secret", old.bus.secret != new.bus.secret),
            (
                "bus.connections_per_peer",
                old.bus.connections_per_peer != new.bus.connections_per_peer,
            ),
            (
                "admin.listen",
                old.admin.as_ref().map(|a| &a.listen) != new.admin.as_ref().map(|a| &a.listen),
            ),
            ("dns", old.dns != new.dns),
        ] {
            if changed {
                tracing::warn!(key = what, "this change takes effect at the next restart");
            }
        }
        let existing_listen: Vec<(String, Address)> = self
            .services()
            .iter()
            .flat_map(|s| {
                let keys: Vec<Address> = s
                    .listeners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                keys.into_iter()
                    .map(|a| (s.name.to_string(), a))
                    .collect::<Vec<_>>()
            })
            .collect();
        let existing_bus: Vec<BusKey> = self
            .bus_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let bound = bind_all(
            new.services.iter().flat_map(|s| {
                s.listen
                    .iter()
                    .filter(|a| !existing_listen.contains(&(s.name.clone(), (*a).clone())))
                    .map(move |a| (s.name.as_str(), a))
            }),
            new.bus
                .listen
                .iter()
                .filter(|b| !existing_bus.contains(&(b.address.clone(), b.service.clone()))),
        )
        .await
        .map_err(|e| e.to_string())?;

        // Services: removed ones stop accepting (their sessions finish), others update in place.
        let wanted: Vec<&str> = new.services.iter().map(|s| s.name.as_str()).collect();
        for svc in self.services() {
            if !wanted.contains(&&*svc.name) {
                svc.close_listeners();
                svc.stop_gateway();
                self.services
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&svc.name);
                tracing::info!(service = %svc.name, "service removed");
            }
        }
        for s in &new.services {
            match self.service(&s.name) {
                Some(svc) => {
                    svc.update(s.clone(), &self.resolver);
                    let mut l = svc.listeners.lock().unwrap_or_else(|e| e.into_inner());
                    let gone: Vec<Address> = l
                        .keys()
                        .filter(|a| !s.listen.contains(a))
                        .cloned()
                        .collect();
                    for a in gone {
                        if let Some(h) = l.remove(&a) {
                            h.close();
                        }
                    }
                }
                None => {
                    self.add_service(s.clone());
                    tracing::info!(service = %s.name, "service added");
                }
            }
        }
        {
            let mut bl = self.bus_listeners.lock().unwrap_or_else(|e| e.into_inner());
            let keep: Vec<BusKey> = new
                .bus
                .listen
                .iter()
                .map(|b| (b.address.clone(), b.service.clone()))
                .collect();
            let gone: Vec<BusKey> = bl.keys().filter(|k| !keep.contains(k)).cloned().collect();
            for k in gone {
                if let Some(h) = bl.remove(&k) {
                    h.close();
                }
            }
        }
        for l in self.serve(bound) {
            tracing::info!(service = %l.service, url = %l.url, "listening");
        }
        *self.admin_token.write().unwrap_or_else(|e| e.into_inner()) =
            new.admin.as_ref().and_then(|a| a.token.clone());
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = new;
        self.warm_up().await;
        self.prune_pools();
        self.reloads.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Stops accepting, tells peers we are going away, lets sessions finish for up to `grace`,
    /// then closes what is left, waits (within what is left of `grace`) until every transport
    /// has written what its sessions queued, and removes the socket files the node created.
    ///
    /// A session is over once its last bytes and fin are queued on its stream; the transport
    /// writes them afterwards, so the wait for transports is what keeps those bytes from being
    /// dropped when the process exits.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for svc in self.services() {
            svc.close_listeners();
        }
        for (_, h) in self
            .bus_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            h.close();
        }
        for t in self.transports.all() {
            t.go_away("node shutting down");
        }
        let open = self.sessions.count();
        if open > 0 {
            tracing::info!(
                sessions = open,
                grace_ms = grace.as_millis() as u64,
                "draining sessions"
            );
        }
        if !self.sessions.wait_empty(grace).await {
            tracing::warn!(
                sessions = self.sessions.count(),
                "grace period over; closing the remaining sessions"
            );
            self.sessions.kill_all();
            self.sessions.wait_empty(Duration::from_millis(500)).await;
        }
        // What sessions queued — on bus streams, for gRPC upstreams — is handed over before the
        // runtime stops, within what is left of the grace (and at least a moment for the bus).
        let flush_until = deadline.max(tokio::time::Instant::now() + Duration::from_millis(500));
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let flushes: Vec<_> = self
            .services()
            .into_iter()
            .map(|svc| tokio::spawn(async move { svc.flush_gateway(left).await }))
            .collect();
        if !self.wait_transports_flushed(flush_until).await {
            tracing::warn!(
                "some transports still had bytes to send at the end of the grace period"
            );
        }
        for f in flushes {
            if !f.await.unwrap_or(false) {
                tracing::warn!("messages queued for a gRPC upstream may be lost: not handed over within shutdown_grace");
            }
        }
        for svc in self.services() {
            svc.stop_gateway();
        }
        if let Some(h) = self
            .admin_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.close();
        }
    }

    /// Waits until every transport — all told GoAway, and with no session left — has sent
    /// everything queued on it and closed, or `deadline`.
    async fn wait_transports_flushed(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            if self.transports.all().iter().all(|t| t.finished()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Changes after every applied reload.
    pub(crate) fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// The node's configuration as last applied.
    pub fn config(&self) -> NodeConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
