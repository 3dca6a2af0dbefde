//! Multicast DNS on the LAN (CONTRACT section 7, docs/CLUSTER.md "mDNS"): a cluster member with
//! `mdns = true` answers for `_busway._tcp.local`, and every `mdns:` peers target (on any node)
//! is kept equal to the instances a browse of its service type resolves — the way discovery
//! keeps `label:` targets, so health, balance and pools work on them as on configured peers.
//!
//! - [`advertise`]: the records a member publishes;
//! - [`browse`]: answers turned into bus peers, hostile ones ignored.
//!
//! The mDNS library runs its own thread and sockets (port 5353); one daemon per node serves
//! both jobs, created at the first need and shut down with the node. A member's daemon works
//! on the cluster interface only, any other node's on all of its IPv4 interfaces.

mod advertise;
mod browse;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use busway_config::NodeConfig;
use busway_net::EndpointAddr;
use mdns_sd::{IfKind, ServiceDaemon};
use tokio::sync::watch;

use crate::metrics::HandshakeLog;
use crate::node::Node;
use browse::Instances;

/// How long a clean stop waits for the library to send its goodbyes.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(1);
/// How long a browse that the library ended by itself waits before it is started again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// The node's mDNS: the daemon, what it advertises, and what its browses found.
#[derive(Default)]
pub struct NodeMdns {
    daemon: Mutex<Option<ServiceDaemon>>,
    /// The full name this node advertises, to unregister at shutdown.
    advertised: Mutex<Option<String>>,
    /// By service type (as configured, without the root dot): the instances resolved now.
    found: Mutex<HashMap<String, Instances>>,
    /// The types browsed now, each with the number of its browse (a browse that ends tells
    /// its own end from a newer browse of the same type).
    browsing: Mutex<HashMap<String, u64>>,
    started: std::sync::atomic::AtomicU64,
    /// Set by [`NodeMdns::shutdown`]: no daemon is created again, no browse restarted.
    closed: std::sync::atomic::AtomicBool,
    /// Bumped whenever `found` changes.
    changes: watch::Sender<u64>,
    /// Ignored answers, logged at most once a second per reason.
    log: HandshakeLog,
}

impl std::fmt::Debug for NodeMdns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMdns")
            .field("advertised", &*lock(&self.advertised))
            .field("browsing", &*lock(&self.browsing))
            .finish()
    }
}

impl NodeMdns {
    /// The daemon, created at the first call: on `[cluster] interface` only when the node is a
    /// member, IPv4 only (busway reads and writes A records, nothing else).
    fn daemon(&self, cfg: &NodeConfig) -> Result<ServiceDaemon, String> {
        let mut d = lock(&self.daemon);
        if let Some(d) = &*d {
            return Ok(d.clone());
        }
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("mdns: the node is stopping".into());
        }
        let new = ServiceDaemon::new().map_err(|e| format!("mdns: cannot start: {e}"))?;
        let mut kinds = Vec::new();
        if let Some(c) = &cfg.cluster {
            kinds.push((IfKind::All, false));
            kinds.push((IfKind::Name(c.interface.clone()), true));
        }
        kinds.push((IfKind::IPv6, false));
        for (kind, on) in kinds {
            let set = if on {
                new.enable_interface(kind)
            } else {
                new.disable_interface(kind)
            };
            set.map_err(|e| format!("mdns: cannot select interfaces: {e}"))?;
        }
        *d = Some(new.clone());
        Ok(new)
    }

    /// Publishes this member's records (`[cluster] mdns = true`): the first TCP bus URL's
    /// address, or the interface's own one for a listener on every address.
    fn advertise(&self, cfg: &NodeConfig, bus_urls: &[String]) -> Result<(), String> {
        let Some(c) = cfg.cluster.as_ref().filter(|c| c.mdns) else {
            return Ok(());
        };
        let own = crate::cluster::iface::lookup(&c.interface, c.service_ip)
            .ok()
            .and_then(|i| i.own.first().copied());
        let addr = advertise::bus_address(bus_urls, own).ok_or_else(|| {
            format!(
                "mdns: no TCP bus listener with an IPv4 address to advertise (bus listeners: {})",
                bus_urls.join(", ")
            )
        })?;
        let info = advertise::service_info(&cfg.node.name, addr)
            .map_err(|e| format!("mdns: cannot advertise {}: {e}", cfg.node.name))?;
        let name = info.get_fullname().to_string();
        self.daemon(cfg)?
            .register(info)
            .map_err(|e| format!("mdns: cannot advertise {name}: {e}"))?;
        tracing::info!(instance = %name, address = %addr.0, port = addr.1, interface = %c.interface, "mdns: advertising");
        *lock(&self.advertised) = Some(name);
        Ok(())
    }

    /// The bus endpoints resolved now for `ty`.
    fn endpoints(&self, ty: &str) -> Vec<EndpointAddr> {
        lock(&self.found)
            .get(ty)
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Starts a browse for every type in `wanted` not browsed yet, and stops those no target
    /// names any more (their instances go with them).
    fn browse_wanted(self: &Arc<Self>, cfg: &NodeConfig, wanted: HashSet<String>) {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let stale: Vec<String> = lock(&self.browsing)
            .keys()
            .filter(|t| !wanted.contains(*t))
            .cloned()
            .collect();
        for ty in stale {
            lock(&self.browsing).remove(&ty);
            self.forget(&ty);
            if let Some(d) = &*lock(&self.daemon) {
                let _ = d.stop_browse(&format!("{ty}."));
            }
        }
        for ty in wanted {
            if lock(&self.browsing).contains_key(&ty) {
                continue;
            }
            let daemon = match self.daemon(cfg) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("{e}; mdns: targets find nothing");
                    return;
                }
            };
            let rx = match daemon.browse(&format!("{ty}.")) {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(service_type = %ty, error = %e, "mdns: cannot browse");
                    continue;
                }
            };
            let n = self
                .started
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            lock(&self.browsing).insert(ty.clone(), n);
            tracing::info!(service_type = %ty, "mdns: browsing");
            tokio::spawn(self.clone().follow(ty, n, cfg.node.name.clone(), rx));
        }
    }

    /// Takes the events of browse `n` of `ty` until it ends. An end this node did not ask for
    /// (the library drops a subscription that falls behind) forgets what it found, after a
    /// pause, so that the follower starts the browse again.
    async fn follow(
        self: Arc<Self>,
        ty: String,
        n: u64,
        me: String,
        rx: mdns_sd::Receiver<mdns_sd::ServiceEvent>,
    ) {
        let full = format!("{ty}.");
        while let Ok(event) = rx.recv_async().await {
            let changed = {
                let mut found = lock(&self.found);
                let set = found.entry(ty.clone()).or_default();
                browse::apply(&full, &me, set, event, &self.log)
            };
            if changed {
                self.bump();
            }
        }
        if lock(&self.browsing).get(&ty) != Some(&n) {
            return;
        }
        tracing::warn!(service_type = %ty, "mdns: the browse ended; starting it again");
        tokio::time::sleep(RESTART_AFTER).await;
        let mut browsing = lock(&self.browsing);
        if browsing.get(&ty) == Some(&n) {
            browsing.remove(&ty);
            drop(browsing);
            self.forget(&ty);
        }
    }

    /// Drops the instances of `ty` and says so.
    fn forget(&self, ty: &str) {
        lock(&self.found).remove(ty);
        self.bump();
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Sends the goodbyes of what this node advertises (others drop it within a second) and
    /// stops the daemon, within [`SHUTDOWN_BOUND`] each.
    pub(crate) async fn shutdown(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // The browses end with the daemon: as asked, not to be started again.
        lock(&self.browsing).clear();
        let Some(d) = lock(&self.daemon).take() else {
            return;
        };
        let advertised = lock(&self.advertised).take();
        if let Some(name) = advertised {
            match d.unregister(&name) {
                Ok(rx) => {
                    let done = tokio::time::timeout(SHUTDOWN_BOUND, rx.recv_async()).await;
                    if !matches!(done, Ok(Ok(mdns_sd::UnregisterStatus::OK))) {
                        tracing::warn!(instance = %name, "mdns: the goodbye was not confirmed; others drop this node when its records expire");
                    }
                }
                Err(e) => tracing::warn!(instance = %name, error = %e, "mdns: cannot unregister"),
            }
        }
        if let Ok(rx) = d.shutdown() {
            let _ = tokio::time::timeout(SHUTDOWN_BOUND, rx.recv_async()).await;
        }
    }
}

impl Node {
    /// Sets every `mdns:` target set from the instances resolved now, and opens the
    /// transports to peers found since (as the start does for configured peers): sessions
    /// prefer peers whose transports are up, so a peer first dialled by a session would only
    /// get sessions once the others fail.
    pub(crate) fn apply_mdns(&self) {
        for svc in self.services() {
            let targets = svc.targets();
            let types = targets.mdns_types();
            if types.is_empty() {
                continue;
            }
            targets.set_mdns(|ty| self.mdns.endpoints(ty));
            for ep in types.iter().flat_map(|ty| self.mdns.endpoints(ty)) {
                self.pools.get(&ep);
            }
        }
    }

    /// The service types the node's `mdns:` targets name now.
    fn mdns_wanted(&self) -> HashSet<String> {
        self.services()
            .iter()
            .flat_map(|s| s.targets().mdns_types())
            .collect()
    }
}

/// Advertises this member (an error stops the start, before `ready`) and follows the browses
/// for as long as the node lives: every change of what they found, and every reload (which may
/// add or drop `mdns:` targets), is applied to the target sets.
pub(crate) fn start(node: &Arc<Node>) -> Result<(), String> {
    node.mdns.advertise(&node.config(), &node.bus_urls())?;
    let weak: Weak<Node> = Arc::downgrade(node);
    let mut found = node.mdns.changes.subscribe();
    let mut reloads = node.reloads();
    tokio::spawn(async move {
        loop {
            let Some(n) = weak.upgrade() else { return };
            n.mdns.browse_wanted(&n.config(), n.mdns_wanted());
            n.apply_mdns();
            drop(n);
            tokio::select! {
                r = found.changed() => if r.is_err() { return },
                r = reloads.changed() => if r.is_err() { return },
            }
        }
    });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
