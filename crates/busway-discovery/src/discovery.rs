//! The handle the node holds: start, read the view and its updates, change the record, stop.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::calls::Fail;
use crate::driver::{Driver, WITHDRAW};
use crate::parse::parse_record;
use crate::record::{record_key, NodeRecord};
use crate::settings::{Settings, StartError};
use crate::shared::Shared;
use crate::view::{Nodes, Update, View};

/// How long `start` waits for etcd before carrying on without it.
pub const START_BOUND: Duration = Duration::from_secs(2);
/// Updates a subscriber may fall behind by before it is told it lagged.
pub const UPDATES: usize = 1024;

/// A node's registration in etcd and its view of every node. Dropping it without
/// [`Discovery::shutdown`] stops the task as a crash would: the record stays until its lease
/// lapses.
#[derive(Debug)]
pub struct Discovery {
    shared: Arc<Shared>,
    key: String,
    prefix: String,
    records: watch::Sender<NodeRecord>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: JoinHandle<()>,
}

impl Discovery {
    /// Connects (trying the endpoints in turn) and, if etcd answers within [`START_BOUND`],
    /// registers `record` and takes the first snapshot before returning. A live record of
    /// another process at this node's key is [`StartError::Conflict`] (the node exits 1 naming
    /// the key); a record of this host whose pid is not running is not live and is replaced.
    /// If etcd does not answer in time, `start` returns `Ok` all the same and keeps trying in
    /// the background: etcd being away is never fatal. Must be called within a tokio runtime.
    pub async fn start(settings: Settings, record: NodeRecord) -> Result<Discovery, StartError> {
        settings.check()?;
        let key = record_key(&settings.prefix, &record.namespace, &record.name);
        parse_record(&settings.prefix, &key, &record.to_json()).map_err(StartError::Record)?;
        let nodes = Nodes::new(&settings.prefix, record.clone());
        let shared = Arc::new(Shared::new(nodes.view(), UPDATES));
        let (records, records_rx) = watch::channel(record);
        let (stop, stop_rx) = oneshot::channel();
        let endpoints = settings.endpoints.join(", ");
        let prefix = settings.prefix.clone();
        let mut driver = Driver::new(shared.clone(), settings, nodes, records_rx);
        let first = match timeout(START_BOUND, driver.connect()).await {
            Ok(Ok(session)) => Some(session),
            Ok(Err(Fail::Conflict { key, holder })) => {
                return Err(StartError::Conflict { key, holder })
            }
            Ok(Err(Fail::Down(why))) => {
                shared.down(&why);
                None
            }
            Err(_) => {
                shared.down(&format!(
                    "etcd {endpoints}: no answer within {} s",
                    START_BOUND.as_secs()
                ));
                None
            }
        };
        let task = tokio::spawn(driver.run(first, stop_rx));
        Ok(Discovery {
            shared,
            key,
            prefix,
            records,
            stop: Some(stop),
            task,
        })
    }

    /// This node's key, `PREFIX/nodes/NAMESPACE/NAME`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Every change of the view from now on. A broadcast rather than an mpsc per subscriber:
    /// the node has several readers (routing, metrics, the admin API) and one slow reader must
    /// not hold the others back nor grow a queue without bound. A reader that falls more than
    /// [`UPDATES`] behind gets `RecvError::Lagged` and should rebuild from [`Self::view`],
    /// which is always whole. Subscribe first, then read the view: updates are idempotent
    /// (an `Add` replaces, a `Remove` of an absent node is nothing), so seeing one twice is
    /// harmless, while missing one is not.
    pub fn updates(&self) -> broadcast::Receiver<Update> {
        self.shared.updates.subscribe()
    }

    /// The current view, and a way to wait for the next.
    pub fn view(&self) -> watch::Receiver<View> {
        self.shared.view.subscribe()
    }

    /// True while registered and the watch is live (`busway_discovery_up`).
    pub fn up(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
    }

    /// Ignored records counted by reason, every reason listed (zeros too), in the order of
    /// [`crate::Rejected::REASONS`]: `busway_discovery_rejected_total{reason}`. A bad write is
    /// counted once, however often a snapshot reads it again.
    pub fn rejected(&self) -> Vec<(&'static str, u64)> {
        self.shared.counts.get()
    }

    /// Why discovery is not up, for `/readyz`: `etcd http://…: connection refused`. `None`
    /// while up.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces this node's record (after a reload changed its labels, say): in the view at
    /// once, and re-put in etcd under the same lease. The name and namespace cannot change
    /// (that is another key: start another `Discovery`), and a record that watchers would
    /// reject is not published; both are logged as errors and the old record stays.
    pub fn set_record(&self, record: NodeRecord) {
        let key = record_key(&self.prefix, &record.namespace, &record.name);
        if key != self.key {
            tracing::error!(key = %self.key, new = %key, "discovery: a record cannot move to another key; keeping the old one");
            return;
        }
        if let Err(why) = parse_record(&self.prefix, &key, &record.to_json()) {
            tracing::error!(key = %self.key, %why, "discovery: the new record would be ignored by every watcher; keeping the old one");
            return;
        }
        self.records.send_replace(record);
    }

    /// Deletes the record and revokes the lease, within about [`WITHDRAW`] (longer only if
    /// etcd is away, when the lease lapses on its own instead).
    pub async fn shutdown(mut self) {
        let Some(stop) = self.stop.take() else { return };
        let (done, answered) = oneshot::channel();
        if stop.send(done).is_ok() {
            let _ = timeout(WITHDRAW + Duration::from_secs(1), answered).await;
        }
        self.task.abort();
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}
