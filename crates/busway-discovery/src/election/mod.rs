//! The etcd side of `[cluster] backend = "etcd"` (docs/CLUSTER.md, "The etcd backend"): one
//! task that keeps a lease of `lease_ttl`, this member's record under it, and a watch on the
//! election's keys, and tells the node what it sees as [`Seen`]s for
//! [`busway_cluster::lease::LeaseElection`]; it claims and gives back the owner key when asked.
//!
//! Its own lease and connection, apart from discovery's: the election renews at a quarter of
//! the TTL (an owner's lease must not lapse for want of one keepalive) and must never wait
//! behind discovery's snapshots.
//!
//! - `records`: the keys and their JSON values;
//! - `session`: one connection's life: lease, record, snapshot, watch, keepalives.

mod records;
mod session;

use std::time::Duration;

use busway_cluster::lease::{Peer, Seen};
use tokio::sync::{mpsc, oneshot};

pub use records::Keys;

/// What the election needs to know.
#[derive(Clone, Debug)]
pub struct ElectionSettings {
    /// `[discovery] etcd`, tried in turn.
    pub endpoints: Vec<String>,
    pub keys: Keys,
    /// `[discovery] lease_ttl`, rounded up to whole seconds.
    pub lease_ttl: Duration,
    /// This member's record.
    pub me: Peer,
}

/// What the node asks of etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    Claim,
    Resign,
}

/// The handle: what etcd said, and the asks.
#[derive(Debug)]
pub struct Election {
    seen: mpsc::UnboundedReceiver<Seen>,
    asks: mpsc::UnboundedSender<Ask>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

/// The most a clean stop waits for etcd to revoke the lease.
const STOP: Duration = Duration::from_secs(2);

impl Election {
    /// Starts the task; it connects in the background, so etcd being away is not an error.
    pub fn start(settings: ElectionSettings) -> Election {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (asks, asks_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        tokio::spawn(session::Task::new(settings, seen_tx, asks_rx).run(stop_rx));
        Election {
            seen,
            asks,
            stop: Some(stop),
        }
    }

    /// The next thing seen; `None` once the task has ended.
    pub async fn next(&mut self) -> Option<Seen> {
        self.seen.recv().await
    }

    /// Create the owner key under this member's lease if it does not exist; the answer comes
    /// as [`Seen::Claimed`].
    pub fn claim(&self) {
        let _ = self.asks.send(Ask::Claim);
    }

    /// Delete the owner key if it is still under this member's lease.
    pub fn resign(&self) {
        let _ = self.asks.send(Ask::Resign);
    }

    /// A clean stop: the lease is revoked, which deletes the owner key (if held) and this
    /// member's record in one revision, so the next member claims at once. Bounded: an etcd
    /// that does not answer lets the lease lapse instead.
    pub async fn stop(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        let (done, wait) = oneshot::channel();
        if stop.send(done).is_ok() {
            let _ = tokio::time::timeout(STOP, wait).await;
        }
    }
}
