//! A gateway service: its upstreams, its downstreams, and the rules between them — which upstream
//! a downstream's bytes go to, where an upstream's replies go, and what happens to a downstream
//! when its upstream stops being healthy (it moves; it is never disconnected for that).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use busway_config::{Address, Balance, Distribute, GrpcConfig};
use bytes::Bytes;
use tokio::sync::watch;

use crate::downstream::{Closed, DownShared, Downstream, DownstreamView, Undelivered};
use crate::pb::output_stream_request::{Broadcast as PbBroadcast, Target};
use crate::pb::{DownstreamEvent, InputStreamRequest, OutputStreamRequest};
use crate::upstream::{Flag, Upstream, UpstreamView};

/// What a gateway reads from its service's configuration; reload replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub grpc: GrpcConfig,
    pub balance: Balance,
    /// How long connecting an upstream may take.
    pub connect_timeout: Duration,
}

/// Which downstreams a broadcast reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    All,
    /// Those that sent or received bytes within `active_window`.
    Active,
    Inactive,
}

impl Broadcast {
    /// The admin API's `target=` spelling.
    pub fn parse(s: &str) -> Option<Broadcast> {
        match s {
            "all" => Some(Broadcast::All),
            "active" => Some(Broadcast::Active),
            "inactive" => Some(Broadcast::Inactive),
            _ => None,
        }
    }
}

/// Service-wide counters (per-upstream ones live on [`Upstream`]).
#[derive(Debug, Default)]
pub(crate) struct GatewayStats {
    pub reassignments: AtomicU64,
    pub unknown_uuid: AtomicU64,
    pub overflow: AtomicU64,
    pub no_upstream: AtomicU64,
}

/// Why [`Gateway::add_upstream`] refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AddError {
    NotGrpc,
    /// An upstream with this address is already listed, with this id.
    Exists(String),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::NotGrpc => f.write_str("an upstream address must be grpc://HOST:PORT"),
            AddError::Exists(id) => write!(f, "this upstream is already listed as {id}"),
        }
    }
}

/// No upstream became healthy within `upstream_wait`.
#[derive(Debug)]
pub struct NoUpstream(pub String);

#[derive(Debug)]
pub struct Gateway {
    pub service: Arc<str>,
    settings: RwLock<Settings>,
    upstreams: RwLock<Vec<Arc<Upstream>>>,
    downs: Mutex<HashMap<Arc<str>, Arc<DownShared>>>,
    /// Bumped whenever an upstream becomes healthy, to wake what waits for one.
    health: watch::Sender<u64>,
    rr: AtomicUsize,
    next_id: AtomicU64,
    epoch: Instant,
    pub(crate) stats: GatewayStats,
    closed: AtomicBool,
}

impl Gateway {
    /// Starts a gateway and a link task per upstream. Needs a Tokio runtime.
    pub fn start(service: &str, upstreams: &[Address], settings: Settings) -> Arc<Gateway> {
        let gw = Arc::new(Gateway {
            service: service.into(),
            settings: RwLock::new(settings),
            upstreams: RwLock::new(Vec::new()),
            downs: Mutex::new(HashMap::new()),
            health: watch::channel(0).0,
            rr: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            stats: GatewayStats::default(),
            closed: AtomicBool::new(false),
        });
        for a in upstreams {
            gw.add(a.clone(), true);
        }
        gw
    }

    pub fn settings(&self) -> Settings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Applies a reloaded configuration: new settings, upstreams added to the file started,
    /// upstreams removed from it drained. Upstreams added through the admin API stay.
    pub fn update(self: &Arc<Self>, upstreams: &[Address], settings: Settings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        let current = self.upstream_list();
        for u in current.iter().filter(|u| u.from_config) {
            if !upstreams.contains(&u.address) {
                self.remove_upstream(&u.id);
            }
        }
        for a in upstreams {
            if !current.iter().any(|u| &u.address == a) {
                self.add(a.clone(), true);
            }
        }
    }

    /// Adds an upstream at run time (the admin API); returns its id.
    pub fn add_upstream(self: &Arc<Self>, address: Address) -> Result<String, AddError> {
        if !matches!(address, Address::Grpc { .. }) {
            return Err(AddError::NotGrpc);
        }
        if let Some(u) = self
            .upstream_list()
            .into_iter()
            .find(|u| u.address == address)
        {
            return Err(AddError::Exists(u.id.clone()));
        }
        Ok(self.add(address, false))
    }

    fn add(self: &Arc<Self>, address: Address, from_config: bool) -> String {
        let id = format!("u{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let up = Arc::new(Upstream::new(id.clone(), address, from_config));
        self.upstreams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(up.clone());
        tracing::info!(service = %self.service, upstream = %up.address, id = %id, "upstream added");
        tokio::spawn(crate::link::run(self.clone(), up));
        id
    }

    /// Drains an upstream (its downstreams move to healthy ones now) and removes it; its call is
    /// closed once what was already queued for it has been sent.
    pub fn remove_upstream(&self, id: &str) -> bool {
        let up = {
            let mut l = self.upstreams.write().unwrap_or_else(|e| e.into_inner());
            match l.iter().position(|u| u.id == id) {
                Some(i) => l.remove(i),
                None => return false,
            }
        };
        up.mark_removed();
        self.move_off(&up);
        tracing::info!(service = %self.service, upstream = %up.address, id = %id, "upstream removed");
        true
    }

    /// Stops every link and closes every downstream (service removed, or node shutdown).
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for u in self.upstream_list() {
            u.mark_removed();
        }
        for d in self.down_list() {
            d.kick();
        }
        self.health.send_modify(|g| *g += 1);
    }

    pub(crate) fn upstream_list(&self) -> Vec<Arc<Upstream>> {
        self.upstreams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn down_list(&self) -> Vec<Arc<DownShared>> {
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn downstream_count(&self) -> usize {
        self.downs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sets a health flag of `up` and acts on a change of its health.
    pub(crate) fn flag(&self, up: &Arc<Upstream>, flag: Flag, on: bool) {
        match up.set(flag, on) {
            Some(true) => {
                up.set_error("");
                tracing::info!(service = %self.service, upstream = %up.address, "upstream healthy");
                self.health.send_modify(|g| *g += 1);
            }
            Some(false) => {
                tracing::warn!(service = %self.service, upstream = %up.address, why = %up.why_down(), "upstream unhealthy; moving its downstreams");
                self.move_off(up);
            }
            None => {}
        }
    }

    /// Reassigns every downstream of `up` to a healthy upstream (or to none until one is; its
    /// next message then waits for one).
    fn move_off(&self, up: &Arc<Upstream>) {
        let affected: Vec<Arc<DownShared>> = self
            .down_list()
            .into_iter()
            .filter(|d| d.assigned().is_some_and(|a| Arc::ptr_eq(&a, up)))
            .collect();
        for d in affected {
            self.stats.reassignments.fetch_add(1, Ordering::Relaxed);
            let to = self.pick();
            if let Some(to) = &to {
                if self.settings().grpc.lifecycle_events {
                    self.event_nowait(to, &d, DownstreamEvent::Connected);
                }
            }
            d.set_assigned(to);
        }
    }

    /// A healthy upstream by `balance`, if there is one.
    pub(crate) fn pick(&self) -> Option<Arc<Upstream>> {
        let ups = self.upstreams.read().unwrap_or_else(|e| e.into_inner());
        let healthy = || ups.iter().filter(|u| u.healthy());
        let n = healthy().count();
        if n == 0 {
            return None;
        }
        match self.settings().balance {
            Balance::RoundRobin => healthy().nth(self.rr.fetch_add(1, Ordering::Relaxed) % n),
            Balance::Random => healthy().nth(rand::random_range(0..n)),
            Balance::LeastSessions => {
                healthy().min_by_key(|u| u.downstreams.load(Ordering::Relaxed))
            }
        }
        .cloned()
    }

    /// Waits until an upstream is healthy (until `deadline`, if given).
    async fn wait_pick(&self, deadline: Option<tokio::time::Instant>) -> Option<Arc<Upstream>> {
        let mut changes = self.health.subscribe();
        loop {
            if self.is_closed() {
                return None;
            }
            if let Some(u) = self.pick() {
                return Some(u);
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, changes.changed()).await.is_err() {
                        return None;
                    }
                }
                None => {
                    let _ = changes.changed().await;
                }
            }
        }
    }

    /// Takes a new client: waits up to `upstream_wait` for a healthy upstream, assigns it, and
    /// (with `lifecycle_events`) tells that upstream it arrived.
    pub async fn attach(self: &Arc<Self>, client: String) -> Result<Downstream, NoUpstream> {
        let s = self.settings();
        let deadline = tokio::time::Instant::now() + s.grpc.upstream_wait;
        let Some(up) = self.wait_pick(Some(deadline)).await else {
            self.stats.no_upstream.fetch_add(1, Ordering::Relaxed);
            return Err(NoUpstream(self.problem().unwrap_or_default()));
        };
        let d = Arc::new(DownShared::new(client, self.now_ms()));
        d.set_assigned(Some(up));
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(d.uuid.clone(), d.clone());
        let down = Downstream {
            gw: self.clone(),
            shared: d,
        };
        if s.grpc.lifecycle_events {
            // The event is queued before any of the client's bytes, on the same call.
            let _ = self
                .send_up(&down.shared, DownstreamEvent::Connected, Bytes::new())
                .await;
        }
        Ok(down)
    }

    /// The client left: unregister, and (with `lifecycle_events`) tell its upstream.
    pub(crate) fn detach(&self, d: &Arc<DownShared>) {
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&d.uuid);
        let up = d.assigned();
        d.set_assigned(None);
        if self.settings().grpc.lifecycle_events && !self.is_closed() {
            if let Some(up) = up.filter(|u| u.healthy()).or_else(|| self.pick()) {
                self.event_nowait(&up, d, DownstreamEvent::Disconnected);
            }
        }
    }

    /// Carries a chunk the client wrote.
    pub(crate) async fn send_data(&self, d: &DownShared, payload: Bytes) -> Result<(), Closed> {
        d.bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        d.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
        self.send_up(d, DownstreamEvent::Data, payload).await
    }

    /// Queues one message on the call of the upstream `d` is assigned to (per-client), or of the
    /// next healthy one (per-chunk), waiting for one to be healthy if none is.
    async fn send_up(
        &self,
        d: &DownShared,
        event: DownstreamEvent,
        payload: Bytes,
    ) -> Result<(), Closed> {
        let per_chunk = self.settings().grpc.distribute == Distribute::PerChunk;
        let mut msg = InputStreamRequest {
            time: crate::time::now(),
            client_uuid: d.uuid.to_string(),
            payload,
            event: event as i32,
        };
        loop {
            let up = match d.assigned() {
                Some(u) if u.healthy() && !(per_chunk && event == DownstreamEvent::Data) => u,
                current => {
                    let u = self.wait_pick(None).await.ok_or(Closed)?;
                    let new = !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &u));
                    if new && !per_chunk {
                        if current.is_some() {
                            self.stats.reassignments.fetch_add(1, Ordering::Relaxed);
                        }
                        // An upstream that takes over a downstream hears of it first.
                        if event == DownstreamEvent::Data && self.settings().grpc.lifecycle_events {
                            self.event_nowait(&u, d, DownstreamEvent::Connected);
                        }
                    }
                    d.set_assigned(Some(u.clone()));
                    u
                }
            };
            let Some(call) = up.call() else {
                // Healthy a moment ago, its call is being torn down right now.
                tokio::task::yield_now().await;
                continue;
            };
            let n = msg.payload.len() as u64;
            match call.sender.send(msg).await {
                Ok(()) => {
                    call.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                    call.counters.enqueued_bytes.fetch_add(n, Ordering::Relaxed);
                    up.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
                    up.stats.bytes_in.fetch_add(n, Ordering::Relaxed);
                    return Ok(());
                }
                Err(back) => {
                    // The call is gone: nothing was lost, try the next healthy upstream.
                    msg = back.0;
                    if up.drop_call(&call) {
                        self.flag(&up, Flag::Stream, false);
                    } else {
                        // Already replaced by a newer call (or being torn down): look again.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// Queues an event without waiting (from places that cannot wait, such as a drop).
    fn event_nowait(&self, up: &Arc<Upstream>, d: &DownShared, event: DownstreamEvent) {
        let Some(call) = up.call() else { return };
        let msg = InputStreamRequest {
            time: crate::time::now(),
            client_uuid: d.uuid.to_string(),
            payload: Bytes::new(),
            event: event as i32,
        };
        up.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
        match call.sender.try_send(msg) {
            Ok(()) => {
                call.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(tokio::sync::mpsc::error::TrySendError::Full(msg)) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        if call.sender.send(msg).await.is_ok() {
                            call.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
            Err(_) => {}
        }
    }

    /// Routes one message an upstream sent.
    pub(crate) fn route(&self, up: &Upstream, msg: OutputStreamRequest) {
        up.stats.msgs_out.fetch_add(1, Ordering::Relaxed);
        up.stats
            .bytes_out
            .fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
        match msg.target {
            Some(Target::ClientUuid(u)) => {
                let _ = self.send_to(&u, msg.payload);
            }
            Some(Target::Broadcast(b)) => {
                let which = match PbBroadcast::try_from(b) {
                    Ok(PbBroadcast::All) => Broadcast::All,
                    Ok(PbBroadcast::Active) => Broadcast::Active,
                    Ok(PbBroadcast::NotActive) => Broadcast::Inactive,
                    Err(_) => {
                        tracing::debug!(service = %self.service, value = b, "reply with an unknown broadcast value dropped");
                        self.stats.unknown_uuid.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                self.broadcast(which, msg.payload);
            }
            None => {
                self.stats.unknown_uuid.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues bytes for one downstream (a reply, or the admin API's `send`).
    pub fn send_to(&self, uuid: &str, payload: Bytes) -> Result<(), Undelivered> {
        let r = match self.down(uuid) {
            Some(d) => d.push(payload, self.now_ms()),
            None => Err(Undelivered::Unknown),
        };
        self.count_undelivered(&r);
        r
    }

    fn count_undelivered(&self, r: &Result<(), Undelivered>) {
        match r {
            Err(Undelivered::Unknown) => &self.stats.unknown_uuid,
            Err(Undelivered::Overflow) => &self.stats.overflow,
            Ok(()) => return,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Queues bytes for every downstream `which` selects; returns how many got them.
    pub fn broadcast(&self, which: Broadcast, payload: Bytes) -> usize {
        let now = self.now_ms();
        let window = self.settings().grpc.active_window.as_millis() as u64;
        let mut delivered = 0;
        for d in self.down_list() {
            let wanted = match which {
                Broadcast::All => true,
                Broadcast::Active => d.active(now, window),
                Broadcast::Inactive => !d.active(now, window),
            };
            if wanted {
                let r = d.push(payload.clone(), now);
                if r.is_ok() {
                    delivered += 1;
                } else if r == Err(Undelivered::Overflow) {
                    self.count_undelivered(&r);
                }
            }
        }
        delivered
    }

    /// Closes one downstream's client.
    pub fn kick(&self, uuid: &str) -> bool {
        self.down(uuid).map(|d| d.kick()).is_some()
    }

    fn down(&self, uuid: &str) -> Option<Arc<DownShared>> {
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .cloned()
    }

    pub fn upstreams(&self) -> Vec<UpstreamView> {
        self.upstream_list().iter().map(|u| u.view()).collect()
    }

    pub fn downstreams(&self) -> Vec<DownstreamView> {
        let now = self.now_ms();
        let window = self.settings().grpc.active_window.as_millis() as u64;
        let mut v: Vec<DownstreamView> = self
            .down_list()
            .iter()
            .map(|d| d.view(now, window))
            .collect();
        v.sort_by_key(|d| std::cmp::Reverse(d.age_ms));
        v
    }

    /// Why no client can be served now, or `None` if an upstream is healthy.
    pub fn problem(&self) -> Option<String> {
        let ups = self.upstream_list();
        if ups.iter().any(|u| u.healthy()) {
            return None;
        }
        if ups.is_empty() {
            return Some("no upstreams".to_string());
        }
        let why: Vec<String> = ups
            .iter()
            .map(|u| format!("{} {}: {}", u.id, u.address, u.why_down()))
            .collect();
        Some(format!("no upstream is ready: {}", why.join("; ")))
    }
}
