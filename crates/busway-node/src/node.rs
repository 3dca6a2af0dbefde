//! A running node: binds everything its configuration names, serves, reloads and drains.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use busway_config::{Address, BusListener, NodeConfig, Secret, ServiceConfig, Source, Targets};
use busway_net::{listener::remove_socket_file, Conn, Listener, Resolver};
use busway_proto::Side;

use crate::admin::prom::Exposition;
use crate::bus::accept::{self, Secured};
use crate::bus::driver::{self, OnOpen, Spec};
use crate::bus::pool::{BusCtx, PeerHost};
use crate::bus::{Pools, Transport, Transports};
use crate::listen::{spawn_accept, ListenerHandle, Pace};
use crate::metrics::Metrics;
use crate::service::ServiceState;
use crate::session::{bus_session, client_session};
use crate::sessions::Sessions;
use crate::tokens::Tokens;

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener the node could not bind: fatal at start (exit 1), rejected on reload.
    #[error("{0}")]
    Bind(#[from] busway_net::BindError),
    /// A file the configuration names is unusable (a TLS key, say): a configuration error,
    /// exit 2 before anything serves. The message names the file and the key.
    #[error("configuration error: {0}")]
    Config(String),
    /// `[node] state_dir` holds something the node cannot read back (exit 1): starting
    /// without it would silently drop issued tokens or resumption keys.
    #[error("state directory: {0}")]
    State(String),
    /// Discovery refused to start (exit 1): another live process holds this node's record.
    #[error("{0}")]
    Discovery(String),
    /// `[cluster]` cannot run (exit 1): a missing privilege (named), no such interface, a
    /// group that cannot be joined.
    #[error("{0}")]
    Cluster(String),
}

impl StartError {
    /// The process exit status CONTRACT section 1 gives this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => 2,
            StartError::Bind(_)
            | StartError::State(_)
            | StartError::Discovery(_)
            | StartError::Cluster(_) => 1,
        }
    }
}

/// One `listening SERVICE URL` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    pub service: String,
    pub url: String,
}

/// The service a Cloudbus segment's `bind` pins its sessions to. Shared with the listener's
/// accept loop, so a reload that renames the section re-pins the address without rebinding it.
pub(crate) type Pin = Arc<RwLock<Option<Arc<str>>>>;

/// A bus listener's accept loop and the pin it reads.
#[derive(Debug)]
pub(crate) struct BusListenerHandle {
    pub handle: ListenerHandle,
    pub pin: Pin,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    /// `namespace/name`: how the node is named in an `Open`'s path and `to` (CONTRACT section
    /// 6). Both parts need a restart to change, so it is fixed at start.
    pub(crate) key: Arc<str>,
    /// `namespace/name#INSTANCE`: how this process enters an `Open`'s path. The random
    /// instance tells two processes of one name apart (a Cloudbus controller and segment on
    /// one host both default to the host name), so neither mistakes the other for itself.
    pub(crate) hop: Arc<str>,
    pub(crate) services: RwLock<HashMap<Arc<str>, Arc<ServiceState>>>,
    pub pools: Pools,
    pub transports: Arc<Transports>,
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<Metrics>,
    /// The registry `/metrics` encodes.
    pub(crate) exposition: Exposition,
    /// Replaced when a reload changes `[dns]`.
    resolver: RwLock<Resolver>,
    pub(crate) bus_listeners: Mutex<HashMap<Address, BusListenerHandle>>,
    pub(crate) admin_listener: Mutex<Option<ListenerHandle>>,
    pub(crate) admin_token: RwLock<Option<Secret>>,
    /// `[admin.tls]` as last loaded: new admin connections are served over it.
    pub(crate) admin_tls: RwLock<Option<Arc<busway_net::tls::ServerConfig>>>,
    pub(crate) config: Mutex<NodeConfig>,
    /// Bumped after every applied reload.
    pub(crate) reloads: tokio::sync::watch::Sender<u64>,
    /// The file a reload reads again; `None` for a node made from a value (the demo, tests).
    pub(crate) source: Mutex<Option<Source>>,
    /// Held for the whole of a reload, so that a SIGHUP and a `POST /v1/reload` arriving
    /// together are applied one after the other, each against what the other left.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// Tokens this node issued (CONTRACT section 10), kept in `state_dir` when there is one.
    pub tokens: Arc<Tokens>,
    /// The ticket key and strike register of 0-RTT resumption, shared by every transport.
    pub(crate) resumption: Arc<busway_proto::Resumption>,
    /// `[discovery]`: the registration and the view, set once the bus listeners are bound.
    pub(crate) discovery: std::sync::OnceLock<Arc<crate::discovery::NodeDiscovery>>,
    /// `[cluster]`: the member this node is, set once the bus listeners are bound.
    pub(crate) cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterMember>>,
    /// Multicast DNS: a member's records and the browses of `mdns:` targets.
    pub(crate) mdns: Arc<crate::mdns::NodeMdns>,
}

/// Listeners bound but not yet serving.
pub(crate) struct Bound {
    pub services: Vec<(String, Address, Listener)>,
    pub bus: Vec<(BusListener, Listener)>,
}

impl Bound {
    /// Releases everything bound so far (removing socket files we created).
    pub fn abandon(self) {
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

/// Binds `services` (service name, address) and `bus` listeners, all or none. They are owned
/// values: iterators of borrowing closures held across the awaits here would keep the admin
/// API's reload future from being `Send` (rustc cannot prove their lifetimes general enough).
pub(crate) async fn bind_all(
    services: Vec<(String, Address)>,
    bus: Vec<BusListener>,
) -> Result<Bound, StartError> {
    let mut bound = Bound {
        services: Vec::new(),
        bus: Vec::new(),
    };
    for (name, addr) in services {
        match Listener::bind(&addr).await {
            Ok(l) => bound.services.push((name, addr, l)),
            Err(e) => {
                bound.abandon();
                return Err(e.into());
            }
        }
    }
    for b in bus {
        match Listener::bind(&b.address).await {
            Ok(l) => bound.bus.push((b, l)),
            Err(e) => {
                bound.abandon();
                return Err(e.into());
            }
        }
    }
    Ok(bound)
}

impl Node {
    /// Binds every listener (failing before serving anything), then starts serving. Returns the
    /// node and its `listening` lines in order: services, bus, admin.
    pub async fn start(cfg: NodeConfig) -> Result<(Arc<Node>, Vec<Listening>), StartError> {
        // The TLS files first: a bad one is a configuration error, before anything is bound.
        let tls = crate::tls::Loaded::load(&cfg).map_err(|e| StartError::Config(e.to_string()))?;
        if cfg.bus.secret.is_none() && !cfg.bus.listen.is_empty() {
            tracing::warn!("bus.secret is not set: peers are not authenticated");
        }
        let services = cfg
            .services
            .iter()
            .flat_map(|s| s.listen.iter().map(|a| (s.name.clone(), a.clone())))
            .collect();
        let tokens = Arc::new(match &cfg.node.state_dir {
            Some(dir) => Tokens::open(dir).map_err(StartError::State)?,
            None => Tokens::in_memory(),
        });
        let resumption = crate::trust::load_resumption(cfg.node.state_dir.as_deref())
            .map_err(StartError::State)?;
        let proto = crate::trust::proto_config(&cfg, &tokens, Some(&resumption))
            .map_err(StartError::Config)?;
        let held = match &cfg.node.state_dir {
            Some(dir) => crate::bus::held::load(dir, crate::bus::held::credential(&proto))
                .map_err(StartError::State)?,
            None => Default::default(),
        };
        // Before binding: the privileges, and IP_FREEBIND for listeners of the service address.
        if let Some(c) = &cfg.cluster {
            crate::cluster::preflight(c).map_err(StartError::Cluster)?;
        }
        let bound = bind_all(services, cfg.bus.listen.clone()).await?;
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
        let ctx = Arc::new(BusCtx::new(proto, metrics.clone(), transports.clone()));
        ctx.set_tls(tls.bus);
        ctx.set_max_transports(cfg.bus.max_transports);
        let resolver = RwLock::new(Resolver::new(&cfg.dns));
        let node = Arc::new_cyclic(|me| Node {
            exposition: Exposition::new(&metrics, me.clone()),
            name: cfg.node.name.clone(),
            key: format!("{}/{}", cfg.node.namespace, cfg.node.name).into(),
            hop: format!(
                "{}/{}#{:08x}",
                cfg.node.namespace,
                cfg.node.name,
                rand::random::<u32>()
            )
            .into(),
            services: RwLock::new(HashMap::new()),
            pools: Pools::new(ctx, cfg.bus.connections_per_peer),
            transports,
            sessions: Arc::new(Sessions::default()),
            metrics,
            resolver,
            bus_listeners: Mutex::new(HashMap::new()),
            admin_listener: Mutex::new(None),
            admin_token: RwLock::new(cfg.admin.as_ref().and_then(|a| a.token.clone())),
            admin_tls: RwLock::new(tls.admin),
            config: Mutex::new(cfg.clone()),
            reloads: tokio::sync::watch::channel(0).0,
            source: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            tokens,
            resumption,
            discovery: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            mdns: Arc::default(),
        });
        let me = Arc::downgrade(&node);
        node.pools
            .ctx()
            .set_peer_host(PeerHost(Box::new(move |ep| me.upgrade()?.peer_host(ep))));
        node.pools.ctx().set_resume(cfg.bus.resumption);
        if cfg.bus.resumption {
            node.pools.set_held(held);
        }
        for s in &cfg.services {
            node.add_service(s.clone());
        }
        let mut lines = node.serve(bound);
        if let Some(l) = admin {
            let h = node.serve_admin(l);
            lines.push(Listening {
                service: "admin".into(),
                url: h.url.clone(),
            });
            *node
                .admin_listener
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(h);
        }
        let bus_urls = node.bus_urls();
        match crate::discovery::NodeDiscovery::start(&cfg, bus_urls).await {
            Ok(Some(d)) => {
                let _ = node.discovery.set(d);
                crate::discovery::spawn_follower(&node);
            }
            Ok(None) => {}
            Err(e) => return Err(StartError::Discovery(e)),
        }
        let bus_url = node.bus_urls().into_iter().next().unwrap_or_default();
        match crate::cluster::ClusterMember::start(&cfg, bus_url).await {
            Ok(Some(c)) => {
                let _ = node.cluster.set(Arc::new(c));
            }
            Ok(None) => {}
            Err(e) => return Err(StartError::Cluster(e)),
        }
        crate::mdns::start(&node).map_err(StartError::Cluster)?;
        node.warm_up().await;
        crate::peers::spawn(&node);
        crate::trust::spawn_token_watch(&node);
        Ok((node, lines))
    }

    /// Starts the admin API's accept loop on `l`. Each connection is served over the
    /// `[admin.tls]` in force when it was accepted, so a reload's new certificate applies to
    /// the next connection.
    pub(crate) fn serve_admin(self: &Arc<Self>, l: Listener) -> ListenerHandle {
        let admin = crate::admin::Admin::new(self.clone());
        let node = Arc::downgrade(self);
        spawn_accept(
            l,
            Pace::Eager,
            Arc::new(move |c, _| {
                let tls = node.upgrade().and_then(|n| n.admin_tls());
                tokio::spawn(admin.clone().serve(c, tls));
            }),
        )
    }

    /// The admin API's TLS in force.
    pub(crate) fn admin_tls(&self) -> Option<Arc<busway_net::tls::ServerConfig>> {
        self.admin_tls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The file [`Node::reload_from_source`] reads again.
    pub fn set_source(&self, source: Source) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// The resolver new target sets use.
    pub(crate) fn resolver(&self) -> Resolver {
        self.resolver
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_resolver(&self, r: Resolver) {
        *self.resolver.write().unwrap_or_else(|e| e.into_inner()) = r;
    }

    pub(crate) fn add_service(&self, cfg: ServiceConfig) -> Arc<ServiceState> {
        let metrics = self.metrics.service(&cfg.name);
        let svc = ServiceState::new(cfg, &self.resolver(), metrics);
        self.services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(svc.name.clone(), svc.clone());
        svc
    }

    /// Starts the accept loops of freshly bound listeners.
    pub(crate) fn serve(self: &Arc<Self>, bound: Bound) -> Vec<Listening> {
        let mut lines = Vec::new();
        for (name, addr, l) in bound.services {
            let Some(svc) = self.service(&name) else {
                continue;
            };
            let n = self.clone();
            let s = svc.clone();
            let h = spawn_accept(
                l,
                Pace::Eager,
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
        for (b, l) in bound.bus {
            let n = self.clone();
            let pin: Pin = Arc::new(RwLock::new(b.service.as_deref().map(Into::into)));
            let p = pin.clone();
            let handle = spawn_accept(
                l,
                Pace::OnePerTurn,
                Arc::new(move |conn, client| n.accept_transport(conn, client, p.clone())),
            );
            lines.push(Listening {
                service: "bus".into(),
                url: handle.url.clone(),
            });
            self.bus_listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(b.address, BusListenerHandle { handle, pin });
        }
        lines
    }

    /// Resolves every target set and opens the transports to every peer, so that the first
    /// session does not pay for them.
    pub(crate) async fn warm_up(&self) {
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

    /// Takes a connection a bus listener accepted: counts it against `max_transports`, runs
    /// TLS when the node has `[bus.tls]`, then the acceptor side of the transport
    /// ([`crate::bus::accept`]). The pin is read per session, so a reload that renames a
    /// segment's section applies to transports already established.
    fn accept_transport(self: &Arc<Self>, conn: Conn, client: String, pin: Pin) {
        let accepted = tokio::time::Instant::now();
        let ctx = self.pools.ctx().clone();
        let Some((conn, admitted)) = accept::admit(&ctx, conn, &client) else {
            return;
        };
        let n = self.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            let Some((secured, proto)) = accept::secure(&ctx, conn, &client, accepted).await else {
                return;
            };
            // Two monomorphic runs rather than one over a socket enum: the plaintext driver
            // stays exactly what it was.
            match secured {
                Secured::Plain(c) => n.run_accepted(c, client, pin, proto, None).await,
                Secured::Tls(s, binding) => {
                    n.run_accepted(s, client, pin, proto, Some(binding)).await
                }
            }
        });
    }

    /// Runs the acceptor side of a transport on `io` until it ends, and logs why.
    async fn run_accepted<S>(
        self: Arc<Self>,
        io: S,
        client: String,
        pin: Pin,
        mut proto: busway_proto::Config,
        binding: Option<busway_net::tls::Binding>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        crate::bus::tls::bind_channel(&mut proto, binding);
        let t = Transport::new(client, Side::Acceptor, proto);
        self.transports.add(&t);
        let n = self.clone();
        let multis = self.pools.ctx().multis.clone();
        let on_open: OnOpen = Arc::new(move |opened| {
            // A multi-link session's later carriers join it here and start nothing.
            let Some(opened) = multis.route(opened) else {
                return;
            };
            let pinned = pin.read().unwrap_or_else(|e| e.into_inner()).clone();
            tokio::spawn(bus_session(n.clone(), opened, pinned));
        });
        let spec = Spec {
            on_open: Some(on_open),
            metrics: self.metrics.clone(),
            established: None,
            on_ticket: None,
            takes_streams: None,
        };
        let reason = driver::run(io, t.clone(), spec).await;
        if t.trust().is_none() {
            // Never established: the peer proved nothing, and anyone can make such ends as
            // fast as this node accepts, so they are logged at most once a second per reason
            // (the metrics count each).
            let Some(suppressed) = self.metrics.handshake_log.admit(reason.label()) else {
                return;
            };
            if reason.is_routine() {
                tracing::info!(peer = %t.peer, %reason, suppressed, "bus connection closed during its handshake");
            } else {
                tracing::warn!(peer = %t.peer, %reason, suppressed, "bus handshake failed");
            }
            return;
        }
        let node = busway_proto::clip(&t.node(), 128).to_string();
        // A peer that hangs up after saying goodbye (or with nothing open) is routine; a
        // protocol, handshake or socket failure is what an operator must see.
        if reason.is_routine() {
            tracing::info!(peer = %t.peer, %node, %reason, "bus transport closed");
        } else {
            tracing::warn!(peer = %t.peer, %node, %reason, "bus transport closed");
        }
    }

    /// The host name the peer endpoint `ep` was configured under by some service, for the
    /// server name a TLS dial checks.
    fn peer_host(&self, ep: &busway_net::EndpointAddr) -> Option<String> {
        self.services()
            .iter()
            .filter(|s| matches!(s.config().targets, Targets::Peers(_)))
            .find_map(|s| s.targets().host_of(ep))
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
    /// `[discovery]` as started, if the node has it.
    pub fn discovery(&self) -> Option<&Arc<crate::discovery::NodeDiscovery>> {
        self.discovery.get()
    }

    /// `[cluster]` as started, if the node has it.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::ClusterMember>> {
        self.cluster.get()
    }

    /// The URLs of the bus listeners bound now, with their real ports, in address order.
    pub(crate) fn bus_urls(&self) -> Vec<String> {
        let g = self.bus_listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut urls: Vec<String> = g.values().map(|b| b.handle.url.clone()).collect();
        urls.sort();
        urls
    }

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

    /// Stops accepting, tells peers we are going away, lets sessions finish for up to `grace`,
    /// then closes what is left, waits (within what is left of `grace`) until every transport
    /// has written what its sessions queued, and removes the socket files the node created.
    ///
    /// A session is over once its last bytes and fin are queued on its stream; the transport
    /// writes them afterwards, so the wait for transports is what keeps those bytes from being
    /// dropped when the process exits.
    pub async fn shutdown(&self, grace: Duration) {
        // The mDNS goodbye first: browsers drop this node within a second.
        self.mdns.shutdown().await;
        // The service address next: another member takes it at once while this one drains.
        if let Some(c) = self.cluster() {
            c.leave().await;
        }
        // Out of the view first, so other nodes stop sending new sessions here.
        if let Some(d) = self.discovery() {
            d.shutdown().await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        for svc in self.services() {
            svc.close_listeners();
        }
        for (_, b) in self
            .bus_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            b.handle.close();
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
        if let Some(dir) = &self.config().node.state_dir {
            match crate::trust::save_resumption(dir, &self.resumption) {
                Ok(f) => tracing::info!(file = %f.display(), "resumption state saved"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot save the resumption state: tickets issued so far get a full handshake after the restart")
                }
            }
            self.save_held_tickets(dir);
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

    /// Saves the tickets this node holds for its peers, so that after the restart its first
    /// transports resume with 0-RTT ([`crate::bus::held`]).
    fn save_held_tickets(&self, dir: &std::path::Path) {
        if !self.pools.ctx().resumes() {
            return;
        }
        let cred = crate::bus::held::credential(&self.pools.ctx().proto());
        match crate::bus::held::save(dir, cred, self.pools.live_tickets()) {
            Ok((f, n)) => tracing::info!(file = %f.display(), tickets = n, "held tickets saved"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the held tickets: the first transports after the restart do full handshakes")
            }
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
