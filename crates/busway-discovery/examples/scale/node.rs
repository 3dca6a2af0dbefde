//! A simulated node: what one busway node asks of etcd, without the rest of the node.
//!
//! Joining is busway-discovery's registration: a lease of its own (one per node, never shared),
//! its keepalive stream with etcd's first answer awaited, a read of the key, and the record
//! written by a transaction on that read's modification revision. It then keeps the lease
//! alive every TTL/3 on that stream. Leaving is its clean shutdown: the record deleted if still
//! under the lease, then the lease revoked. The calls go through the crate's own thin client
//! (`src/etcd`), so the requests on the wire are the ones a node sends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use busway_discovery::{record_key, Host, NodeRecord};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::etcd::ops::{delete, get, lease_is, mod_revision_is, put, txn};
use crate::etcd::{Client, KeepAlives, LeaseKeeper, Options};
use crate::events::{Events, Kind, Phase, SEQ};

/// Keepalives sent and answered, by every simulated node together.
#[derive(Debug, Default)]
pub struct Keepalives {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    /// Streams that ended or failed while their node was live.
    pub broken: AtomicU64,
}

/// How the simulated nodes connect: the values busway-discovery's own connections use
/// (`src/calls.rs`), HTTP/2 pings every 6 s included, since they are part of a node's load.
pub const OPTIONS: Options = Options {
    connect_timeout: Duration::from_secs(1),
    ping_interval: Duration::from_secs(6),
    ping_timeout: Duration::from_secs(2),
    max_message: 32 << 20,
};

/// What every simulated node shares: etcd, the prefix, the clocks.
#[derive(Debug)]
pub struct Sim {
    pub endpoint: String,
    /// Connections the nodes share, by slot; none: each node connects when it joins and
    /// drops its connection when it leaves, as a node's process does.
    pub shared: Vec<Client>,
    pub prefix: String,
    pub ttl: i64,
    pub events: Arc<Events>,
    pub keepalives: Arc<Keepalives>,
}

/// A node that has joined: its lease and the task keeping it alive.
#[derive(Debug)]
pub struct Live {
    slot: usize,
    client: Client,
    lease: i64,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The record of node `name`, the size of a real one: labels, an address, a service.
pub fn record(name: &str, slot: usize, seq: u64) -> NodeRecord {
    NodeRecord {
        name: name.to_string(),
        namespace: "default".into(),
        version: "0.1.0".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "chat".to_string()),
            ("zone".to_string(), format!("z{}", slot % 3)),
        ]),
        annotations: BTreeMap::from([(SEQ.to_string(), seq.to_string())]),
        host: Host {
            hostname: format!("sim-{:04}", slot),
            pid: 10_000 + u32::try_from(slot).unwrap_or(0),
        },
        bus: vec![format!(
            "tcp://10.{}.{}.{}:7100",
            slot / 65_536 % 256,
            slot / 256 % 256,
            slot % 256
        )],
        services: vec!["chat".into()],
        gateways: vec![],
        relay: false,
        advertise_relay: None,
    }
}

fn name(slot: usize) -> String {
    format!("n{slot:05}")
}

impl Sim {
    async fn client(&self, slot: usize) -> Result<Client, String> {
        if self.shared.is_empty() {
            return Client::connect(&self.endpoint, OPTIONS)
                .await
                .map_err(|e| format!("connect: {e}"));
        }
        Ok(self.shared[slot % self.shared.len()].clone())
    }

    fn key(&self, slot: usize) -> String {
        record_key(&self.prefix, "default", &name(slot))
    }

    /// Registers node `slot`, as `Discovery::start` does, and keeps its lease alive.
    pub async fn join(&self, slot: usize, phase: Phase) -> Result<Live, String> {
        let mut c = self.client(slot).await?;
        let lease = c.lease_grant(self.ttl).await.map_err(|e| e.to_string())?;
        let (keeper, answers) = c
            .lease_keep_alive(lease.id)
            .await
            .map_err(|e| e.to_string())?;
        let key = self.key(slot);
        let found = c.range(get(&key)).await.map_err(|e| e.to_string())?;
        let rev = found.kvs.first().map_or(0, |kv| kv.mod_revision);
        let seq = self.events.seq();
        let value = record(&name(slot), slot, seq).to_json();
        self.events.sent(seq, phase, Kind::Join, &name(slot));
        let put = c
            .txn(txn(mod_revision_is(&key, rev), put(&key, &value, lease.id)))
            .await;
        self.settle(seq, put.map(|d| d.succeeded).map_err(|e| e.to_string()))
            .map_err(|e| e.unwrap_or_else(|| format!("{key} changed under the registration")))?;
        let (stop, stopped) = oneshot::channel();
        let every = Duration::from_secs(u64::try_from(lease.ttl.max(1)).unwrap_or(1)) / 3;
        let task = tokio::spawn(keep_alive(
            keeper,
            answers,
            every,
            stopped,
            self.keepalives.clone(),
        ));
        Ok(Live {
            slot,
            client: c,
            lease: lease.id,
            stop,
            task,
        })
    }

    /// A clean stop, as `Discovery::shutdown` does: the record deleted if still under the
    /// lease, then the lease revoked. Returns the node's slot, whatever happened.
    pub async fn leave(&self, live: Live, phase: Phase) -> (usize, Result<(), String>) {
        let _ = live.stop.send(());
        let _ = live.task.await;
        let mut c = live.client;
        (
            live.slot,
            self.withdraw(&mut c, live.slot, live.lease, phase).await,
        )
    }

    async fn withdraw(
        &self,
        c: &mut Client,
        slot: usize,
        lease: i64,
        phase: Phase,
    ) -> Result<(), String> {
        let key = self.key(slot);
        let seq = self.events.seq();
        self.events.sent(seq, phase, Kind::Leave, &name(slot));
        let del = c.txn(txn(lease_is(&key, lease), delete(&key))).await;
        self.settle(seq, del.map(|d| d.succeeded).map_err(|e| e.to_string()))
            .map_err(|e| e.unwrap_or_else(|| format!("{key} was no longer under its lease")))?;
        c.lease_revoke(lease).await.map_err(|e| e.to_string())
    }

    /// The answer to change `seq`'s write: `Ok(true)` if it took. A write that failed or was
    /// refused changed nothing, so no watcher is waited for. A refusal is `Err(None)`, for the
    /// caller to name.
    fn settle(&self, seq: u64, r: Result<bool, String>) -> Result<(), Option<String>> {
        match r {
            Ok(true) => {
                self.events.answered(seq);
                Ok(())
            }
            other => {
                self.events.failed(seq);
                Err(other.err())
            }
        }
    }
}

/// One lease's keepalives, every `every`, until stopped.
async fn keep_alive(
    mut keeper: LeaseKeeper,
    mut answers: KeepAlives,
    every: Duration,
    mut stop: oneshot::Receiver<()>,
    counts: Arc<Keepalives>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if keeper.keep_alive().await.is_err() {
                    counts.broken.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            a = answers.message() => match a {
                Ok(Some(a)) if a.ttl > 0 => {
                    counts.answered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    counts.broken.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            _ = &mut stop => return,
        }
    }
}
