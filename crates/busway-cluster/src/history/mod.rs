//! The cluster's history: eras, and the join, leave and takeover events within them.
//!
//! Kept as a set ordered by [`Event`]'s order, so merging two members' histories is a union
//! that every member computes alike, whatever order the events arrived in. A digest of the
//! whole set rides in every advert: members whose digests differ pull from the owner
//! (`sync.rs`). The set is capped at [`MAX_EVENTS`], dropping the oldest, so memory, the
//! persisted file and a full transfer stay bounded; the highest era is kept apart from the
//! events, so era numbers never go back when old events are dropped.

mod event;
mod snapshot;
pub(crate) mod sync;

pub use event::{Event, EventKind, MAX_EVENT_LEN};
pub use snapshot::{Snapshot, SnapshotError, MAX_SNAPSHOT_LEN};

use std::collections::BTreeSet;

use ring::digest::{Context, SHA256};

use crate::wire::buf::Writer;

/// Most events kept; the oldest go first.
pub const MAX_EVENTS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The highest era this node has known, even if all its events were dropped.
    era: u32,
    events: BTreeSet<Event>,
    digest: u64,
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        let mut h = History {
            era: 0,
            events: BTreeSet::new(),
            digest: 0,
        };
        h.rehash();
        h
    }

    /// The highest era known: the next cluster founded from here gets this + 1.
    pub fn era(&self) -> u32 {
        self.era
    }

    pub(crate) fn note_era(&mut self, era: u32) {
        self.era = self.era.max(era);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// First 8 bytes of SHA-256 over the events in order: equal histories, equal digests.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn events(&self) -> impl DoubleEndedIterator<Item = &Event> + ExactSizeIterator {
        self.events.iter()
    }

    pub fn contains(&self, e: &Event) -> bool {
        self.events.contains(e)
    }

    /// The newest event: where an incremental pull starts.
    pub fn last(&self) -> Option<&Event> {
        self.events.last()
    }

    /// Events after `key` (all for `None`), in order.
    pub fn after<'a>(&'a self, key: Option<&Event>) -> Box<dyn Iterator<Item = &'a Event> + 'a> {
        use std::ops::Bound::{Excluded, Unbounded};
        match key {
            Some(k) => Box::new(self.events.range((Excluded(k.clone()), Unbounded))),
            None => Box::new(self.events.iter()),
        }
    }

    /// Every event with its `seq`: its place within its era, from 1.
    pub fn numbered(&self) -> Vec<(u32, &Event)> {
        let mut out = Vec::with_capacity(self.events.len());
        let (mut era, mut seq) = (None, 0u32);
        for e in &self.events {
            if era != Some(e.era) {
                era = Some(e.era);
                seq = 0;
            }
            seq += 1;
            out.push((seq, e));
        }
        out
    }

    /// The last join or leave of `node`'s `incarnation` within `era`: whether the history
    /// already says it is in the cluster.
    pub fn presence(&self, era: u32, node: &str, incarnation: u32) -> Option<EventKind> {
        self.events
            .iter()
            .rev()
            .take_while(|e| e.era >= era)
            .filter(|e| e.era == era && e.node == node && e.incarnation == incarnation)
            .map(|e| e.kind)
            .find(|k| *k != EventKind::Takeover)
    }

    /// Adds events; returns those that were new and are still kept after the cap.
    pub fn merge<I: IntoIterator<Item = Event>>(&mut self, events: I) -> Vec<Event> {
        let mut added = Vec::new();
        for e in events {
            self.era = self.era.max(e.era);
            if self.events.insert(e.clone()) {
                added.push(e);
            }
        }
        if added.is_empty() {
            return added;
        }
        while self.events.len() > MAX_EVENTS {
            self.events.pop_first();
        }
        added.retain(|e| self.events.contains(e));
        self.rehash();
        added
    }

    fn rehash(&mut self) {
        let mut ctx = Context::new(&SHA256);
        let mut w = Writer::new();
        for e in &self.events {
            w.buf.clear();
            e.write(&mut w);
            ctx.update(&w.buf);
        }
        let d = ctx.finish();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        self.digest = u64::from_be_bytes(b);
    }
}

#[cfg(test)]
pub(crate) fn test_event(era: u32, at_ms: u64, kind: EventKind, node: &str) -> Event {
    Event {
        era,
        at_ms,
        recorder: "r".into(),
        kind,
        node: node.into(),
        incarnation: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    #[test]
    fn merge_is_a_union_in_any_order() {
        let evs: Vec<Event> = (0..20)
            .map(|i| test_event(1 + i / 7, 1000 + u64::from(i), Join, "n"))
            .collect();
        let mut a = History::new();
        let mut b = History::new();
        assert_eq!(a.merge(evs.iter().cloned()).len(), 20);
        assert_eq!(b.merge(evs.iter().rev().cloned()).len(), 20);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.merge(evs.iter().cloned()), vec![], "nothing new twice");
        assert_ne!(a.digest(), History::new().digest());
        assert_eq!(a.era(), 3);
    }

    #[test]
    fn seq_counts_within_each_era() {
        let mut h = History::new();
        h.merge([
            test_event(1, 5, Join, "a"),
            test_event(1, 6, Takeover, "a"),
            test_event(2, 1, Join, "b"),
        ]);
        let seqs: Vec<(u32, u32)> = h.numbered().iter().map(|(s, e)| (e.era, *s)).collect();
        assert_eq!(seqs, vec![(1, 1), (1, 2), (2, 1)]);
    }

    #[test]
    fn the_cap_drops_the_oldest_and_keeps_the_era() {
        let mut h = History::new();
        let first = test_event(1, 0, Join, "a");
        h.merge([first.clone()]);
        let later: Vec<Event> = (0..MAX_EVENTS as u64)
            .map(|i| test_event(2, i, Join, "b"))
            .collect();
        let added = h.merge(later);
        assert_eq!(h.len(), MAX_EVENTS);
        assert!(!h.contains(&first));
        assert_eq!(added.len(), MAX_EVENTS);
        // An event older than everything kept comes back and is dropped again: no change.
        let d = h.digest();
        assert_eq!(h.merge([first]), vec![]);
        assert_eq!(h.digest(), d);
        h.note_era(1);
        assert_eq!(h.era(), 2);
    }

    #[test]
    fn presence_is_the_last_join_or_leave() {
        let mut h = History::new();
        assert_eq!(h.presence(1, "a", 1), None);
        h.merge([test_event(1, 1, Join, "a"), test_event(1, 2, Takeover, "a")]);
        assert_eq!(h.presence(1, "a", 1), Some(Join));
        h.merge([test_event(1, 3, Leave, "a")]);
        assert_eq!(h.presence(1, "a", 1), Some(Leave));
        assert_eq!(h.presence(2, "a", 1), None, "another era");
        assert_eq!(h.presence(1, "a", 2), None, "another incarnation");
    }

    #[test]
    fn after_starts_past_the_key() {
        let mut h = History::new();
        let evs: Vec<Event> = (0..5).map(|i| test_event(1, i, Join, "a")).collect();
        h.merge(evs.clone());
        assert_eq!(h.after(Some(&evs[2])).count(), 2);
        assert_eq!(h.after(None).count(), 5);
        assert_eq!(h.last(), Some(&evs[4]));
    }
}
