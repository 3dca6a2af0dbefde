//! A watcher: a real `Discovery` (its own lease, record, connection, snapshot and watch), as
//! the node runs it, with a reader on its updates that notes when each change arrives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_discovery::{Discovery, Settings, Update};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::events::{Events, SEQ};
use crate::node::record;

/// What a watcher saw besides the changes: whole snapshots taken again, updates lost to lag.
#[derive(Debug, Default)]
pub struct Oddities {
    pub resets: AtomicU64,
    pub lagged: AtomicU64,
}

#[derive(Debug)]
pub struct Watcher {
    pub discovery: Discovery,
    /// How long `Discovery::start` took: connect, lease, register, the first snapshot.
    pub started_in: Duration,
    reader: JoinHandle<()>,
}

impl Watcher {
    /// Watcher number `w`, registered as `watch-W` (slot numbers past the simulated nodes', so
    /// its address differs from theirs).
    pub async fn start(
        w: usize,
        slot: usize,
        settings: Settings,
        events: Arc<Events>,
        odd: Arc<Oddities>,
    ) -> Result<Watcher, String> {
        let t = Instant::now();
        let discovery = Discovery::start(settings, record(&format!("watch-{w}"), slot, 0))
            .await
            .map_err(|e| e.to_string())?;
        let started_in = t.elapsed();
        if !discovery.up() {
            return Err(format!(
                "watcher {w} is not up: {:?}",
                discovery.last_error()
            ));
        }
        let mut updates = discovery.updates();
        let reader = tokio::spawn(async move {
            loop {
                match updates.recv().await {
                    Ok(Update::Add(r)) => {
                        // Watchers' own records carry no number: not a change under test.
                        if let Some(seq) = r.annotations.get(SEQ).and_then(|s| s.parse().ok()) {
                            if seq > 0 {
                                events.saw_join(w, seq);
                            }
                        }
                    }
                    Ok(Update::Remove { name, .. }) if !name.starts_with("watch-") => {
                        events.saw_leave(w, &name);
                    }
                    Ok(Update::Remove { .. }) => {}
                    Ok(Update::Reset(_)) => {
                        odd.resets.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(RecvError::Lagged(n)) => {
                        odd.lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Watcher {
            discovery,
            started_in,
            reader,
        })
    }

    /// Nodes in this watcher's view, its own record included.
    pub fn in_view(&self) -> usize {
        self.discovery.view().borrow().nodes.len()
    }

    /// Withdraws its record, like a clean stop of a node.
    pub async fn stop(self) {
        self.reader.abort();
        self.discovery.shutdown().await;
    }
}
