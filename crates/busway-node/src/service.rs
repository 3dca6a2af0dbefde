//! A service's live state: its configuration, target set, counters and listeners.
//!
//! Reload swaps the configuration and target set in place, so sessions already running keep the
//! values they started with while new sessions see the new ones. A service whose backends are
//! `grpc://` upstreams has a [`Gateway`] instead of a target set; reload updates it in place too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use busway_config::{Address, ServiceConfig};
use busway_grpc::{Gateway, Settings};
use busway_net::{Resolver, TargetSet};

use crate::limits::SessionLimits;
use crate::listen::ListenerHandle;
use crate::metrics::ServiceMetrics;

#[derive(Debug)]
pub struct ServiceState {
    pub name: Arc<str>,
    config: RwLock<Arc<ServiceConfig>>,
    targets: RwLock<Arc<TargetSet>>,
    pub metrics: Arc<ServiceMetrics>,
    /// What the session limits count; kept across reloads, like the counters.
    pub limits: Arc<SessionLimits>,
    pub listeners: Mutex<HashMap<Address, ListenerHandle>>,
    gateway: RwLock<Option<Arc<Gateway>>>,
}

impl ServiceState {
    pub fn new(cfg: ServiceConfig, resolver: &Resolver, metrics: Arc<ServiceMetrics>) -> Arc<Self> {
        let targets = new_targets(&cfg, resolver);
        let gateway = start_gateway(&cfg);
        Arc::new(ServiceState {
            name: cfg.name.as_str().into(),
            gateway: RwLock::new(gateway),
            config: RwLock::new(Arc::new(cfg)),
            targets: RwLock::new(targets),
            metrics,
            limits: Arc::default(),
            listeners: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> Arc<ServiceConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn targets(&self) -> Arc<TargetSet> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The gRPC gateway, for a service whose backends are upstreams.
    pub fn gateway(&self) -> Option<Arc<Gateway>> {
        self.gateway
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies a changed configuration; the target set is rebuilt only if its inputs changed,
    /// so endpoints keep their health and session counts otherwise. A gateway keeps its
    /// downstreams and the upstreams still listed.
    pub fn update(&self, cfg: ServiceConfig, resolver: &Resolver) {
        let old = self.config();
        {
            let mut gw = self.gateway.write().unwrap_or_else(|e| e.into_inner());
            match (gw.as_ref(), settings(&cfg)) {
                (Some(g), Some(s)) => g.update(cfg.targets.addresses(), s),
                (Some(g), None) => {
                    g.shutdown();
                    *gw = None;
                }
                (None, Some(_)) => *gw = start_gateway(&cfg),
                (None, None) => {}
            }
        }
        if set_changed(&old, &cfg) {
            *self.targets.write().unwrap_or_else(|e| e.into_inner()) = new_targets(&cfg, resolver);
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
    }

    /// Resolves the service's names again, through `resolver` from now on (`[dns]` changed).
    pub fn set_resolver(&self, resolver: &Resolver) {
        self.targets().set_resolver(resolver.clone());
    }

    /// Hands the gateway's upstreams what is queued for them, within `limit`, before the node
    /// stops (see [`Gateway::flush`]); true at once for a service without a gateway.
    pub async fn flush_gateway(&self, limit: std::time::Duration) -> bool {
        match self.gateway() {
            Some(g) => g.flush(limit).await,
            None => true,
        }
    }

    /// Stops the gateway's upstream links and closes its downstreams (the service is gone).
    pub fn stop_gateway(&self) {
        if let Some(g) = self.gateway() {
            g.shutdown();
        }
    }

    /// Stops accepting on every listener of the service.
    pub fn close_listeners(&self) {
        let mut l = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        for (_, h) in l.drain() {
            h.close();
        }
    }
}

/// Whether a reload must rebuild the target set. The destructuring names every key of a
/// service, so a new key does not compile until someone decides how a reload applies it.
fn set_changed(old: &ServiceConfig, new: &ServiceConfig) -> bool {
    let ServiceConfig {
        // The service's identity: a renamed service is a removed one and an added one.
        name: _,
        // Listeners are diffed by the node.
        listen: _,
        targets,
        health_check,
        // The health checks' probes use it.
        connect_timeout,
        // Read by each session (and the gateway) from the configuration when it starts.
        mode: _,
        balance: _,
        latch_timeout: _,
        idle_timeout: _,
        mirror: _,
        // The gateway is updated in place.
        grpc: _,
        // Read by each new session's admission (crate::limits): the counts and buckets stay in
        // the service's state, so a changed limit applies to the next session and never closes
        // an open one.
        limits: _,
    } = old;
    *targets != new.targets
        || *health_check != new.health_check
        || (new.health_check.is_some() && *connect_timeout != new.connect_timeout)
}

/// What a gateway reads from its service's configuration; `None` for a service of sockets.
fn settings(cfg: &ServiceConfig) -> Option<Settings> {
    Some(Settings {
        grpc: cfg.grpc?,
        balance: cfg.balance,
        connect_timeout: cfg.connect_timeout,
    })
}

fn start_gateway(cfg: &ServiceConfig) -> Option<Arc<Gateway>> {
    let s = settings(cfg)?;
    Some(Gateway::start(&cfg.name, cfg.targets.addresses(), s))
}

/// The target set of a service of sockets; a gateway's upstreams are not in one (they are
/// reached by gRPC, not dialled per session), so its set is empty.
fn new_targets(cfg: &ServiceConfig, resolver: &Resolver) -> Arc<TargetSet> {
    let addrs = if cfg.grpc.is_some() {
        &[][..]
    } else {
        cfg.targets.addresses()
    };
    let set = TargetSet::new(addrs, resolver.clone());
    if let (Some(hc), busway_config::Targets::Backends(_)) = (cfg.health_check, &cfg.targets) {
        set.spawn_health_checks(hc, cfg.connect_timeout);
    }
    set
}
