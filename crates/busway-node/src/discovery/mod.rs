//! The node's side of discovery (CONTRACT section 6): it registers its record through
//! [`busway_discovery`], follows the view, and keeps every `label:` target set equal to the
//! nodes the view says it selects — so health, balance and fan-out work on discovered nodes
//! exactly as on configured ones.
//!
//! - [`record`] is what this node publishes;
//! - [`route`] is which endpoint a selected node is reached by.

mod record;
pub(crate) mod route;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use busway_config::NodeConfig;
use busway_discovery::{Discovery, Settings, View};
use serde::Serialize;
use tokio::sync::watch;

use crate::node::Node;
use route::Me;

/// How long a clean stop waits for etcd to delete the record; the lease removes it anyway.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// A running registration and the view it watches.
#[derive(Debug)]
pub struct NodeDiscovery {
    /// Taken out by [`NodeDiscovery::shutdown`]; every other use is a short synchronous call.
    registry: Mutex<Option<Discovery>>,
    view: watch::Receiver<View>,
    /// Who this node is at start (its host name is what routing keeps from it).
    me: Me,
    /// This node as routing sees it under the configuration in force: set again on every
    /// view change and reload, read by every relayed session.
    current: Mutex<Me>,
    /// Nodes selected but unreachable, each logged once.
    said: Mutex<HashSet<(String, &'static str)>>,
}

/// A row of `GET /v1/nodes`.
#[derive(Debug, Serialize)]
pub struct NodeView {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub bus: Vec<String>,
    pub services: Vec<String>,
    pub gateways: Vec<busway_discovery::Gateway>,
    pub relay: bool,
    #[serde(rename = "self")]
    pub is_self: bool,
}

impl NodeDiscovery {
    /// Registers this node (its record built from `cfg` and its bound bus URLs) and starts
    /// watching. etcd not answering is not an error; a live record of another process under
    /// this node's key is.
    pub(crate) async fn start(
        cfg: &NodeConfig,
        bus_urls: Vec<String>,
    ) -> Result<Option<Arc<NodeDiscovery>>, String> {
        let Some(d) = &cfg.discovery else {
            return Ok(None);
        };
        let settings = Settings {
            endpoints: d.etcd.clone(),
            prefix: d.prefix.clone(),
            lease_ttl: d.lease_ttl,
        };
        let registry = Discovery::start(settings, record::own(cfg, bus_urls))
            .await
            .map_err(|e| e.to_string())?;
        let me = Me::of(cfg, &busway_config::hostname());
        Ok(Some(Arc::new(NodeDiscovery {
            current: Mutex::new(me.clone()),
            view: registry.view(),
            registry: Mutex::new(Some(registry)),
            me,
            said: Mutex::default(),
        })))
    }

    /// The nodes in view, this one included.
    pub fn nodes(&self) -> Vec<NodeView> {
        let view = self.view.borrow().clone();
        view.nodes
            .values()
            .map(|n| NodeView {
                name: n.name.clone(),
                namespace: n.namespace.clone(),
                labels: n.labels.clone(),
                bus: n.bus.clone(),
                services: n.services.clone(),
                gateways: n.gateways.clone(),
                relay: n.relay,
                is_self: n.namespace == self.me.namespace && n.name == self.me.name,
            })
            .collect()
    }

    /// Nodes in view by namespace (`busway_discovery_nodes{namespace}`).
    pub fn nodes_by_namespace(&self) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for n in self.view.borrow().nodes.values() {
            *by.entry(n.namespace.clone()).or_insert(0) += 1;
        }
        by
    }

    /// 1 while the watch is live (`busway_discovery_up`).
    pub fn up(&self) -> bool {
        lock(&self.registry).as_ref().is_some_and(Discovery::up)
    }

    /// Records ignored so far, by reason (`busway_discovery_rejected_total{reason}`).
    pub fn rejected(&self) -> Vec<(&'static str, u64)> {
        lock(&self.registry)
            .as_ref()
            .map(Discovery::rejected)
            .unwrap_or_default()
    }

    /// What `/readyz` says while etcd is away; `None` while the watch is live.
    pub fn readiness_note(&self) -> Option<String> {
        if self.up() {
            return None;
        }
        let why = lock(&self.registry)
            .as_ref()
            .and_then(Discovery::last_error)
            .unwrap_or_else(|| "not answering yet".into());
        Some(format!(
            "discovery: etcd unreachable ({why}); running on the last view"
        ))
    }

    /// Publishes a new record (a reload changed labels, services or bus listeners).
    pub(crate) fn republish(&self, cfg: &NodeConfig, bus_urls: Vec<String>) {
        if let Some(r) = lock(&self.registry).as_ref() {
            r.set_record(record::own(cfg, bus_urls));
        }
    }

    /// Removes the record and revokes the lease, within [`SHUTDOWN_BOUND`].
    pub(crate) async fn shutdown(&self) {
        let Some(r) = lock(&self.registry).take() else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_BOUND, r.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("discovery: etcd did not confirm the record's removal in time; its lease will expire it");
        }
    }

    /// The view as it stands.
    pub(crate) fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// This node as routing sees it, as of the last view change or reload.
    pub(crate) fn current_me(&self) -> Me {
        lock(&self.current).clone()
    }

    /// The endpoints a relay dials for the nodes in view: their pools are kept.
    pub(crate) fn relay_endpoints(&self) -> Vec<busway_net::EndpointAddr> {
        let me = self.current_me();
        if !me.relay {
            return Vec::new();
        }
        let view = self.view();
        view.nodes
            .values()
            .filter_map(|n| route::reach(&view, &me, n, &[]).ok())
            .collect()
    }

    /// The endpoints `sel` selects for `service`, each with the node it reaches; unreachable
    /// nodes are logged once each.
    fn select(
        &self,
        view: &View,
        me: &Me,
        sel: &BTreeMap<String, String>,
        service: &str,
    ) -> Vec<(busway_net::EndpointAddr, Arc<str>)> {
        let (eps, unreachable) = route::endpoints(view, me, sel, service);
        for (key, why) in unreachable {
            let why = why.says();
            if lock(&self.said).insert((key.clone(), why)) {
                tracing::warn!(node = %key, %service, "discovery: a selected node is {why}; left out");
            }
        }
        eps
    }
}

impl Node {
    /// Sets every `label:` target set from the current view.
    pub(crate) fn apply_discovery(&self) {
        let Some(d) = self.discovery() else { return };
        let view = d.view.borrow().clone();
        let me = Me::of(&self.config(), &d.me.hostname);
        *lock(&d.current) = me.clone();
        for svc in self.services() {
            let targets = svc.targets();
            if targets.selectors().is_empty() {
                continue;
            }
            targets.set_discovered(|sel| d.select(&view, &me, sel, &svc.name));
        }
        if me.relay {
            // A relay dials nodes no service of its own lists: its pools of departed nodes go
            // only when the view changes.
            self.prune_pools();
        }
    }
}

/// Follows the view for as long as the node lives: every change is applied to the target
/// sets.
pub(crate) fn spawn_follower(node: &Arc<Node>) {
    let Some(d) = node.discovery() else { return };
    let weak: Weak<Node> = Arc::downgrade(node);
    let mut view = d.view.clone();
    tokio::spawn(async move {
        loop {
            let Some(n) = weak.upgrade() else { return };
            n.apply_discovery();
            drop(n);
            // The registry gone ends the follower.
            if view.changed().await.is_err() {
                return;
            }
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
