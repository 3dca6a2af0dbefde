//! A service's live state: its configuration, target set, counters and listeners.
//!
//! Reload swaps the configuration and target set in place, so sessions already running keep the
//! values they started with while new sessions see the new ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use busway_config::{Address, ServiceConfig};
use busway_net::{Resolver, TargetSet};

use crate::listen::ListenerHandle;
use crate::metrics::ServiceMetrics;

#[derive(Debug)]
pub struct ServiceState {
    pub name: Arc<str>,
    config: RwLock<Arc<ServiceConfig>>,
    targets: RwLock<Arc<TargetSet>>,
    pub metrics: Arc<ServiceMetrics>,
    pub listeners: Mutex<HashMap<Address, ListenerHandle>>,
}

impl ServiceState {
    pub fn new(cfg: ServiceConfig, resolver: &Resolver, metrics: Arc<ServiceMetrics>) -> Arc<Self> {
        let targets = new_targets(&cfg, resolver);
        Arc::new(ServiceState {
            name: cfg.name.as_str().into(),
            config: RwLock::new(Arc::new(cfg)),
            targets: RwLock::new(targets),
            metrics,
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

    /// Applies a changed configuration; the target set is rebuilt only if its inputs changed,
    /// so endpoints keep their health and session counts otherwise.
    pub fn update(&self, cfg: ServiceConfig, resolver: &Resolver) {
        let old = self.config();
        if old.targets != cfg.targets || old.health_check != cfg.health_check {
            *self.targets.write().unwrap_or_else(|e| e.into_inner()) = new_targets(&cfg, resolver);
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
    }

    /// Stops accepting on every listener of the service.
    pub fn close_listeners(&self) {
        let mut l = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        for (_, h) in l.drain() {
            h.close();
        }
    }
}

fn new_targets(cfg: &ServiceConfig, resolver: &Resolver) -> Arc<TargetSet> {
    let set = TargetSet::new(cfg.targets.addresses(), resolver.clone());
    if let (Some(hc), busway_config::Targets::Backends(_)) = (cfg.health_check, &cfg.targets) {
        set.spawn_health_checks(hc, cfg.connect_timeout);
    }
    set
}
