//! What the [`crate::Discovery`] handle reads without asking the driver task: whether
//! discovery is up, why not, the rejection counts, the view and its updates. The task writes
//! them; every read is a load or a short lock, so the node's hot paths never wait on etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{broadcast, watch};

use crate::rejections::Counts;
use crate::view::{Nodes, Update, View};

/// What the [`crate::Discovery`] handle reads without asking the task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) up: AtomicBool,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) counts: Counts,
    pub(crate) view: watch::Sender<View>,
    pub(crate) updates: broadcast::Sender<Update>,
}

impl Shared {
    pub(crate) fn new(view: View, updates: usize) -> Shared {
        Shared {
            up: AtomicBool::new(false),
            last_error: Mutex::new(None),
            counts: Counts::default(),
            view: watch::Sender::new(view),
            updates: broadcast::Sender::new(updates),
        }
    }

    /// The view first, then the updates: a subscriber that reads the view after an update
    /// arrived never finds the view older than the update.
    pub(crate) fn publish(&self, nodes: &Nodes, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        self.view.send_replace(nodes.view());
        for u in updates {
            // No subscriber is not an error.
            let _ = self.updates.send(u);
        }
    }

    /// etcd is away (or refused this node): logged when the reason changes, not at every retry.
    pub(crate) fn down(&self, why: &str) {
        self.up.store(false, Ordering::Relaxed);
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(why) {
            tracing::warn!(error = %why, "discovery: not watching; keeping the last view");
            *last = Some(why.to_string());
        }
    }

    pub(crate) fn live(&self, endpoint: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(endpoint, "discovery: registered and watching");
        }
    }
}
