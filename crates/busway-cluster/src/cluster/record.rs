//! The history as this node keeps it: the owner records and pushes events; members take
//! pushes from their owner, pull what they missed, and push back what the owner lacks.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Cluster, State};
use crate::history::sync::{chunks, Pull, Step};
use crate::history::{Event, EventKind};
use crate::output::Output;
use crate::wire::{Body, Header, HistoryChunk, HistoryRequest, Role};

impl Cluster {
    /// Records an event (owner only), merged at once so the next check sees it.
    pub(super) fn record(&mut self, now: Instant, kind: EventKind, node: &str, incarnation: u32) {
        let e = Event {
            era: self.era,
            at_ms: self.event_time(now),
            recorder: self.cfg.node.clone(),
            kind,
            node: node.to_owned(),
            incarnation,
        };
        let added = self.history.merge([e]);
        self.fresh.extend(added);
    }

    /// A leave, if the history has this incarnation in the cluster.
    pub(super) fn record_leave(&mut self, now: Instant, node: &str, incarnation: u32) {
        if self.history.presence(self.era, node, incarnation) == Some(EventKind::Join) {
            self.record(now, EventKind::Leave, node, incarnation);
        }
    }

    /// A join for every live member (this node too) the history does not have in the cluster.
    /// Joiners still listening and other owners wait: the one until it takes part, the other
    /// until it yields, so that events do not change the rank while two owners compare it.
    pub(super) fn record_joins(&mut self, now: Instant) {
        let mut due = Vec::new();
        let (me, inc) = (self.cfg.node.clone(), self.cfg.incarnation);
        if self.history.presence(self.era, &me, inc) != Some(EventKind::Join) {
            due.push((me, inc));
        }
        for m in self.members.values() {
            if m.advert.role == Role::Member
                && self.history.presence(self.era, &m.name, m.incarnation) != Some(EventKind::Join)
            {
                due.push((m.name.clone(), m.incarnation));
            }
        }
        for (node, inc) in due {
            self.record(now, EventKind::Join, &node, inc);
        }
    }

    /// Pushes what the owner gained during this input to the group, and asks for persistence.
    pub(super) fn flush_records(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        let fresh = std::mem::take(&mut self.fresh);
        if self.state == State::Owner {
            let (cs, _) = chunks(fresh.iter(), 0, &self.history);
            for c in cs {
                self.multicast(Body::History(c));
            }
        }
        self.out.push_back(Output::HistoryChanged);
    }

    pub(super) fn on_history_request(&mut self, from: SocketAddr, q: HistoryRequest) {
        let (cs, _) = chunks(self.history.after(q.after.as_ref()), q.id, &self.history);
        for c in cs {
            self.send(from, Body::History(c));
        }
    }

    pub(super) fn on_chunk(&mut self, now: Instant, h: &Header, c: HistoryChunk) {
        if c.id == 0 {
            self.on_push(h, c);
            return;
        }
        let ours = self
            .pull
            .as_ref()
            .is_some_and(|p| p.peer == h.node && p.id == c.id);
        if !ours {
            return;
        }
        self.merge_in(c.events.iter().cloned());
        let step = match self.pull.as_mut() {
            Some(p) => p.on_chunk(&c, &self.history),
            None => return,
        };
        match step {
            Step::Wait => {}
            Step::Again => self.pull_request(now),
            Step::Done(extras) => {
                let to = self.pull.take().map(|p| p.to);
                self.last_pull = Some(now);
                if let (Some(to), false) = (to, extras.is_empty()) {
                    let (cs, _) = chunks(extras.iter(), 0, &self.history);
                    for c in cs {
                        self.send(to, Body::History(c));
                    }
                }
            }
            Step::Abandon => {
                self.pull = None;
                self.last_pull = Some(now);
            }
        }
    }

    /// Events nobody asked for: from our owner to its members, or from a member to us, the
    /// owner, which passes what is new on to the group.
    fn on_push(&mut self, h: &Header, c: HistoryChunk) {
        match self.state {
            State::Member => {
                if self.followed_owner().is_some_and(|o| o.name == h.node) {
                    self.merge_in(c.events);
                }
            }
            State::Owner => {
                let from_member = self.members.get(&h.node).is_some_and(|m| !m.is_owner());
                if from_member {
                    let added = self.history.merge(c.events);
                    self.fresh.extend(added);
                }
            }
            State::Joining { .. } | State::Left => {}
        }
    }

    /// Merges events learnt from others (not to be pushed on).
    fn merge_in<I: IntoIterator<Item = Event>>(&mut self, events: I) {
        if !self.history.merge(events).is_empty() {
            self.out.push_back(Output::HistoryChanged);
        }
    }

    pub(super) fn start_pull(&mut self, now: Instant, peer: &str, to: SocketAddr) {
        self.pull = Some(Pull::new(peer, to, &self.history, now));
        self.pull_request(now);
    }

    pub(super) fn pull_request(&mut self, now: Instant) {
        let id = self.fresh_id();
        let deadline = now + self.cfg.timing.advert_interval;
        let Some(p) = self.pull.as_mut() else {
            return;
        };
        let to = p.to;
        let q = p.request(id, deadline);
        self.send(to, Body::HistoryRequest(q));
    }
}
