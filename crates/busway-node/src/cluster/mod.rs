//! The node's side of the LAN cluster (CONTRACT section 7, docs/CLUSTER.md): the thin driver
//! around [`busway_cluster::Cluster`], which holds the whole protocol.
//!
//! - [`caps`]: the privileges checked before anything is bound;
//! - [`iface`]: the interface's index, MAC and own address;
//! - [`socket`]: the group socket; [`netlink`]: the service address; [`garp`]: gratuitous ARP;
//! - [`lan`]: which member serves a session with `lan_balance`;
//! - [`persist`]: the history in `state_dir`; [`driver`]: the loop that feeds the machine and
//!   carries out what it asks; [`prom`]: the section 7 metrics;
//! - [`address`]: the address and ARP steps both backends' owners take;
//! - [`etcd_owner`]: `backend = "etcd"`, the owner elected through an etcd lease;
//! - [`member`]: either backend, as the node holds it.

mod address;
mod caps;
mod driver;
mod etcd_owner;
mod garp;
pub(crate) mod iface;
mod lan;
mod member;
mod netlink;
mod persist;
pub(crate) mod prom;
mod socket;

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use busway_cluster::{Boot, Cluster, ClusterView, Config, Metrics, Timing};
use busway_config::{ClusterConfig, NodeConfig};
use tokio::sync::watch;

pub use member::ClusterMember;

/// A running cluster member.
#[derive(Debug)]
pub struct NodeCluster {
    machine: Mutex<Cluster>,
    /// Set to stop the driver: it leaves the cluster (removing the address) and says so.
    stop: watch::Sender<bool>,
    done: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set with `lan_balance = true`.
    lan: Option<lan::LanBalance>,
}

/// Checks what must hold before anything is bound: the privileges, and an interface with an
/// IPv4 address of its own. Also lets listeners bind the service address before it is here.
pub(crate) fn preflight(c: &ClusterConfig) -> Result<(), String> {
    let missing = caps::missing();
    if !missing.is_empty() {
        return Err(format!(
            "cluster: {} missing: adding and removing {} on {} needs CAP_NET_ADMIN, and gratuitous ARP CAP_NET_RAW (run as root or grant them)",
            missing.join(" and "),
            c.service_ip,
            c.interface
        ));
    }
    let i = iface::lookup(&c.interface, c.service_ip).map_err(|e| format!("cluster: {e}"))?;
    if i.own.is_empty() {
        return Err(format!(
            "cluster: interface {} has no IPv4 address of its own to send adverts from",
            c.interface
        ));
    }
    busway_net::listener::allow_freebind(c.service_ip.into());
    Ok(())
}

impl NodeCluster {
    /// Joins the cluster: removes a leftover service address (before this returns, so before
    /// `ready`), says hello, and starts the driver.
    pub(crate) async fn start(
        cfg: &NodeConfig,
        bus_url: String,
    ) -> Result<Option<Arc<NodeCluster>>, String> {
        let Some(c) = &cfg.cluster else {
            return Ok(None);
        };
        let err = |what: &str, e: &dyn std::fmt::Display| format!("cluster: {what}: {e}");
        let i = iface::lookup(&c.interface, c.service_ip).map_err(|e| format!("cluster: {e}"))?;
        let source = *i
            .own
            .first()
            .ok_or_else(|| format!("cluster: interface {} has no IPv4 address", c.interface))?;
        let nl = netlink::Netlink::open(i.index, c.service_ip, c.prefix_len)
            .map_err(|e| err("netlink", &e))?;
        let arp = garp::Garp::open(i.link, i.mac, c.service_ip)
            .map_err(|e| err("cannot open the gratuitous ARP socket", &e))?;
        let sock = socket::open(c.group, i.index, source)
            .map_err(|e| err(&format!("cannot join {} on {}", c.group, c.interface), &e))?;

        let dir = cfg.node.state_dir.clone();
        let saved = dir.as_deref().map(persist::load).unwrap_or_default();
        let config = Config {
            // The service address names the cluster: members that share it are one cluster,
            // and a neighbouring cluster on the same group necessarily has another.
            cluster_id: format!("{}/{}", c.service_ip, c.prefix_len),
            node: cfg.node.name.clone(),
            incarnation: saved.incarnation.saturating_add(1),
            priority: c.priority,
            secret: c.secret.expose().as_bytes().to_vec(),
            bus_address: bus_url,
            timing: Timing::new(c.advert_interval, c.dead_after),
        };
        let boot = Boot {
            now: Instant::now(),
            unix_ms: unix_ms(),
            address_present: i.has_service_ip,
        };
        let machine = Cluster::new(config, saved.history, boot).map_err(|e| err("settings", &e))?;
        if let Some(d) = &dir {
            // This start counts even if the history never changes.
            persist::save(d, &machine.snapshot());
        }
        let (stop, stop_rx) = watch::channel(false);
        let me = Arc::new(NodeCluster {
            machine: Mutex::new(machine),
            stop,
            done: Mutex::new(None),
            lan: c.lan_balance.then_some(lan::LanBalance {
                service_ip: c.service_ip,
            }),
        });
        let mut d = driver::Driver {
            cluster: me.clone(),
            sock,
            group: c.group.into(),
            address: address::Address {
                netlink: nl,
                garp: arp,
                interface: c.interface.clone(),
                service_ip: c.service_ip,
            },
            state_dir: dir,
        };
        // The leftover address goes now, before `ready`; the hello goes out with it.
        d.carry_out().await;
        if iface::has_address(&c.interface, c.service_ip) && !me.lock().is_owner() {
            return Err(format!(
                "cluster: cannot remove the leftover {} from {}",
                c.service_ip, c.interface
            ));
        }
        let task = tokio::spawn(d.run(stop_rx));
        *me.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(Some(me))
    }

    /// `GET /v1/cluster`.
    pub fn view(&self) -> ClusterView {
        self.lock().view(Instant::now())
    }

    pub fn metrics(&self) -> Metrics {
        self.lock().metrics()
    }

    /// Leaves cleanly: the address is removed and the others told, so one of them takes over
    /// at once instead of after `dead_after` adverts.
    pub(crate) async fn leave(&self) {
        stop_task(&self.stop, &self.done, std::time::Duration::from_secs(2)).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tells a driver to stop (it leaves the cluster on its way out) and waits for it, at most
/// `limit`: a shutdown must not hang on a stuck netlink call or an etcd that does not answer.
async fn stop_task(
    stop: &watch::Sender<bool>,
    done: &Mutex<Option<tokio::task::JoinHandle<()>>>,
    limit: std::time::Duration,
) {
    let _ = stop.send(true);
    let task = done.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = task {
        let _ = tokio::time::timeout(limit, t).await;
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
