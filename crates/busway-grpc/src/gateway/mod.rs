//! A gateway service: its upstreams, its downstreams, and the rules between them — which upstream
//! a downstream's bytes go to, where an upstream's replies go, and what happens to a downstream
//! when its upstream stops being healthy (it moves; it is never disconnected for that).
//!
//! The registry and the admin views are here; `assign` decides which upstream a downstream uses,
//! `send` carries the client's bytes up, `replies` routes what upstreams send back.

mod assign;
mod replies;
mod send;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use busway_config::{Address, Balance, GrpcConfig};
use tokio::sync::watch;

use crate::downstream::{DownShared, DownstreamView};
use crate::upstream::{Upstream, UpstreamView};

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
    /// Lifecycle events not queued for any upstream (see `event_nowait`).
    pub events_dropped: AtomicU64,
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
    /// Upstreams removed whose link may still be handing over what was queued for them.
    draining: Mutex<Vec<Arc<Upstream>>>,
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
            draining: Mutex::new(Vec::new()),
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
        tracing::info!(service = %self.service, upstream = %up.label, id = %id, "upstream added");
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
        tracing::info!(service = %self.service, upstream = %up.label, id = %id, "upstream removed");
        let mut d = self.draining.lock().unwrap_or_else(|e| e.into_inner());
        d.retain(|u| !u.has_ended());
        d.push(up);
        true
    }

    /// Hands every upstream what is queued for it, for a node about to stop: by `limit`, each
    /// upstream's queue is pulled into its call, the call's request stream is ended, and the
    /// upstream has ended its side — which, HTTP/2 being in order, says it read every message
    /// before our end of stream. Only then is stopping the runtime safe for those messages.
    ///
    /// Returns whether all of that happened in time for every upstream (an upstream without an
    /// open call has nothing to hand over). The upstreams stop taking downstreams at once: this
    /// is the first half of [`Gateway::shutdown`], which should follow.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut ups = self.upstream_list();
        ups.extend(
            self.draining
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        for u in &ups {
            u.stop_by(deadline);
        }
        let mut clean = true;
        for u in &ups {
            if !u.ended(deadline).await {
                tracing::warn!(service = %self.service, upstream = %u.label, "upstream's queue not handed over before shutdown");
                clean = false;
            }
        }
        clean
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
            .map(|u| format!("{} {}: {}", u.id, u.label, u.why_down()))
            .collect();
        Some(format!("no upstream is ready: {}", why.join("; ")))
    }
}
