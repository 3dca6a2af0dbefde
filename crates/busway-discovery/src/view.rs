//! The nodes in view, and how etcd's snapshots and events change them — without etcd: the
//! driver hands in key-values, this file hands back [`Update`]s, so every rule is tested here.
//!
//! The node's own record is always in the view, from the local copy rather than from etcd: it
//! is there before etcd first answers and while etcd is away, and an event that someone else
//! wrote under the node's key never replaces it (the driver re-registers instead).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::parse::{cap, parse_record, Rejected, MAX_KEY_BYTES};
use crate::record::{record_key, NodeRecord};
use crate::rejections::{Counts, Memory};

/// The nodes in view: key -> record, every one valid, this node's own included. Cheap to clone
/// (one `Arc`); a new `View` is published on every change. Each record is shared too, so the
/// copy a change makes of a view that someone still reads is a map of pointers, not of records
/// (docs/SCALING.md: at 1,000 nodes a deep copy took 2–4 ms of CPU per change).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub nodes: Arc<BTreeMap<String, Arc<NodeRecord>>>,
    /// The etcd revision the view reflects (0 until etcd has answered once).
    pub revision: i64,
}

/// One change of the view, in the order they happen (the linkerd2-proxy discovery model).
///
/// `Add` is larger than the others (a whole record, about 280 bytes), and left unboxed: an
/// update is stored once in the broadcast ring and matched on by every reader, so a box would
/// only add an allocation and an indirection to the shape the node is written against.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// A node added, or its record changed: replaces any record of the same namespace/name.
    Add(NodeRecord),
    /// A node left (its record was deleted, expired with its lease, or became invalid).
    Remove { namespace: String, name: String },
    /// A fresh snapshot: these are all the nodes now, and nothing else.
    Reset(Vec<NodeRecord>),
}

/// A key-value from etcd, reduced to what the view needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kv<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
    pub(crate) mod_revision: i64,
}

/// The view's state, owned by the driver task.
#[derive(Debug)]
pub(crate) struct Nodes {
    prefix: String,
    own_key: String,
    own: NodeRecord,
    nodes: Arc<BTreeMap<String, Arc<NodeRecord>>>,
    revision: i64,
    memory: Memory,
}

impl Nodes {
    pub(crate) fn new(prefix: &str, own: NodeRecord) -> Nodes {
        let own_key = record_key(prefix, &own.namespace, &own.name);
        let nodes = Arc::new(BTreeMap::from([(own_key.clone(), Arc::new(own.clone()))]));
        Nodes {
            prefix: prefix.to_string(),
            own_key,
            own,
            nodes,
            revision: 0,
            memory: Memory::default(),
        }
    }

    pub(crate) fn own_key(&self) -> &str {
        &self.own_key
    }

    pub(crate) fn own(&self) -> &NodeRecord {
        &self.own
    }

    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    /// Everything up to `rev` has been seen (a progress notification, or the last event of a
    /// watch response). Never goes back.
    pub(crate) fn seen(&mut self, rev: i64) {
        self.revision = self.revision.max(rev);
    }

    pub(crate) fn view(&self) -> View {
        View {
            nodes: self.nodes.clone(),
            revision: self.revision,
        }
    }

    /// This node's record changed (same key: the caller checks the name and namespace).
    pub(crate) fn set_own(&mut self, own: NodeRecord) -> Option<Update> {
        if own == self.own {
            return None;
        }
        self.own = own.clone();
        Arc::make_mut(&mut self.nodes).insert(self.own_key.clone(), Arc::new(own.clone()));
        Some(Update::Add(own))
    }

    /// A snapshot at revision `rev` replaces the whole view.
    pub(crate) fn snapshot<'a>(
        &mut self,
        kvs: impl IntoIterator<Item = Kv<'a>>,
        rev: i64,
        counts: &Counts,
    ) -> Update {
        let mut fresh = BTreeMap::from([(self.own_key.clone(), Arc::new(self.own.clone()))]);
        // Every key read, valid or not: the bad ones still there stay remembered.
        let mut present = std::collections::HashSet::new();
        for kv in kvs {
            present.insert(String::from_utf8_lossy(kv.key).into_owned());
            if let Some((key, record)) = self.check(kv, counts) {
                fresh.insert(key, Arc::new(record));
            }
        }
        self.memory.retain(|k| present.contains(k));
        self.nodes = Arc::new(fresh);
        self.revision = rev;
        Update::Reset(self.nodes.values().map(|r| NodeRecord::clone(r)).collect())
    }

    /// A put event. The own key is left alone (see the module docs).
    pub(crate) fn put(&mut self, kv: Kv<'_>, counts: &Counts) -> Option<Update> {
        if kv.key == self.own_key.as_bytes() {
            return None;
        }
        match self.check(kv, counts) {
            Some((key, record)) => {
                if self.nodes.get(&key).is_some_and(|r| **r == record) {
                    return None;
                }
                Arc::make_mut(&mut self.nodes).insert(key, Arc::new(record.clone()));
                Some(Update::Add(record))
            }
            // Whatever was valid at this key before is not any more.
            None => self.remove(&String::from_utf8_lossy(kv.key)),
        }
    }

    /// A delete event (or a lease expiry).
    pub(crate) fn delete(&mut self, key: &[u8]) -> Option<Update> {
        if key == self.own_key.as_bytes() {
            return None;
        }
        let key = String::from_utf8_lossy(key);
        self.memory.forget(&key);
        self.remove(&key)
    }

    fn remove(&mut self, key: &str) -> Option<Update> {
        if !self.nodes.contains_key(key) {
            return None;
        }
        let r = Arc::make_mut(&mut self.nodes).remove(key)?;
        Some(Update::Remove {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })
    }

    /// The record at `kv` if it is valid, else `None` after counting and (once) logging why.
    fn check(&mut self, kv: Kv<'_>, counts: &Counts) -> Option<(String, NodeRecord)> {
        let key = match std::str::from_utf8(kv.key) {
            Ok(k) if k.len() <= MAX_KEY_BYTES => k,
            _ => {
                let key = String::from_utf8_lossy(kv.key);
                self.reject(&key, kv.mod_revision, &Rejected::Key, counts);
                return None;
            }
        };
        match parse_record(&self.prefix, key, kv.value) {
            Ok(record) => {
                self.memory.forget(key);
                Some((key.to_string(), record))
            }
            Err(why) => {
                self.reject(key, kv.mod_revision, &why, counts);
                None
            }
        }
    }

    fn reject(&mut self, key: &str, rev: i64, why: &Rejected, counts: &Counts) {
        if self.memory.rejected(counts, key, rev, why).log {
            tracing::warn!(
                key = %cap(key),
                reason = why.label(),
                why = %why,
                "discovery: record ignored (counted in busway_discovery_rejected_total)"
            );
        }
    }
}

#[cfg(test)]
mod tests;
