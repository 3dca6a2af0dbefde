//! `[cluster] backend = "etcd"`: the thin driver around [`LeaseElection`] (docs/CLUSTER.md,
//! "The etcd backend"). What etcd says comes from busway-discovery's [`Election`] task; the
//! address and gratuitous ARP go through the same netlink and ARP sockets as the multicast
//! owner's, in the order the machine asks for them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use busway_cluster::lease::{LeaseConfig, LeaseElection, LeaseNotice, LeaseOutput, Peer};
use busway_cluster::{ClusterView, Metrics, Snapshot};
use busway_config::{ClusterConfig, DiscoveryConfig, NodeConfig};
use busway_discovery::election::{Election, ElectionSettings, Keys};
use tokio::sync::watch;

use super::address::Address;
use super::garp::Garp;
use super::netlink::Netlink;
use super::{iface, persist, stop_task, unix_ms};

/// A running member of an etcd-elected cluster.
#[derive(Debug)]
pub struct EtcdOwner {
    machine: Mutex<LeaseElection>,
    stop: watch::Sender<bool>,
    done: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Driver {
    me: Arc<EtcdOwner>,
    election: Election,
    address: Address,
}

impl EtcdOwner {
    /// Removes a leftover service address (before this returns, so before `ready`) and starts
    /// the election; etcd need not answer yet.
    pub(crate) fn start(
        cfg: &NodeConfig,
        c: &ClusterConfig,
        d: &DiscoveryConfig,
        bus_url: String,
    ) -> Result<Arc<EtcdOwner>, String> {
        let err = |what: &str, e: &dyn std::fmt::Display| format!("cluster: {what}: {e}");
        let i = iface::lookup(&c.interface, c.service_ip).map_err(|e| format!("cluster: {e}"))?;
        let mut netlink =
            Netlink::open(i.index, c.service_ip, c.prefix_len).map_err(|e| err("netlink", &e))?;
        let garp = Garp::open(i.link, i.mac, c.service_ip)
            .map_err(|e| err("cannot open the gratuitous ARP socket", &e))?;
        if i.has_service_ip {
            netlink
                .remove()
                .map_err(|e| err(&format!("cannot remove the leftover {}", c.service_ip), &e))?;
            tracing::info!(address = %c.service_ip, interface = %c.interface, "cluster: leftover service address removed");
        }
        // Starts count as incarnations, as with the multicast backend; its history is kept.
        let incarnation = match cfg.node.state_dir.as_deref() {
            Some(dir) => {
                let saved = persist::load(dir);
                let incarnation = saved.incarnation.saturating_add(1);
                let s = Snapshot {
                    incarnation,
                    history: saved.history,
                };
                persist::save(dir, &s);
                incarnation
            }
            None => 1,
        };
        let config = LeaseConfig {
            node: cfg.node.name.clone(),
            priority: c.priority,
            bus_address: bus_url,
            incarnation,
        };
        let me = Peer {
            name: config.node.clone(),
            priority: config.priority,
            bus: config.bus_address.clone(),
            incarnation,
        };
        let settings = ElectionSettings {
            endpoints: d.etcd.clone(),
            keys: Keys::new(
                &d.prefix,
                &format!("{}/{}", c.service_ip, c.prefix_len),
                &cfg.node.name,
            ),
            // etcd's leases are whole seconds: rounded up, as discovery's.
            lease_ttl: Duration::from_secs(
                d.lease_ttl.as_secs() + u64::from(d.lease_ttl.subsec_nanos() > 0),
            ),
            me,
        };
        let (stop, stop_rx) = watch::channel(false);
        let owner = Arc::new(EtcdOwner {
            machine: Mutex::new(LeaseElection::new(config, Instant::now(), unix_ms())),
            stop,
            done: Mutex::new(None),
        });
        let driver = Driver {
            me: owner.clone(),
            election: Election::start(settings),
            address: Address {
                netlink,
                garp,
                interface: c.interface.clone(),
                service_ip: c.service_ip,
            },
        };
        let task = tokio::spawn(driver.run(stop_rx));
        *owner.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(owner)
    }

    pub fn view(&self) -> ClusterView {
        self.lock().view(Instant::now())
    }

    pub fn metrics(&self) -> Metrics {
        self.lock().metrics()
    }

    /// Removes the address, then revokes the lease: the key and the record go in one revision
    /// and the next member claims at once.
    pub(crate) async fn leave(&self) {
        // The revocation's own bound (2 s) and the address's removal fit in it.
        stop_task(&self.stop, &self.done, Duration::from_secs(3)).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseElection> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Driver {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let wake = self.me.lock().poll_timeout();
            // No timer: wake once a second anyway, a cheap bound.
            let wake = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                seen = self.election.next() => match seen {
                    Some(s) => self.me.lock().handle(Instant::now(), s),
                    None => {
                        tracing::error!("cluster: the etcd election task ended");
                        self.me.lock().leave(Instant::now());
                        self.carry_out();
                        return;
                    }
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    self.me.lock().handle_timeout(Instant::now());
                }
                _ = stop.changed() => {
                    self.me.lock().leave(Instant::now());
                    self.carry_out();
                    self.election.stop().await;
                    return;
                }
            }
            self.carry_out();
        }
    }

    fn carry_out(&mut self) {
        loop {
            let Some(out) = self.me.lock().poll_output() else {
                return;
            };
            match out {
                LeaseOutput::AddAddress { lifetime } => self.address.add(lifetime),
                LeaseOutput::RefreshAddress { lifetime } => self.address.refresh(lifetime),
                LeaseOutput::RemoveAddress => self.address.remove(),
                LeaseOutput::SendGratuitousArp => self.address.arp(),
                LeaseOutput::Claim => self.election.claim(),
                LeaseOutput::Resign => self.election.resign(),
                LeaseOutput::Notice(n) => log_notice(&n),
            }
        }
    }
}

fn log_notice(n: &LeaseNotice) {
    match n {
        LeaseNotice::Owner => {
            tracing::info!("cluster: this node holds the etcd owner key and the service address")
        }
        LeaseNotice::Lost { why } => {
            tracing::warn!("cluster: service address given up: {why}")
        }
        LeaseNotice::Yielded { to } => {
            tracing::info!(to = %to, "cluster: yielded the service address to a member of higher priority")
        }
        LeaseNotice::MemberUp { node } => tracing::info!(member = %node, "cluster: member up"),
        LeaseNotice::MemberDown { node } => {
            tracing::info!(member = %node, "cluster: member down")
        }
    }
}
