//! Who holds the service address (section 7's rule).
//!
//! - No live owner: the best-ranked live member takes it, once no live member still names an
//!   owner this node has not heard of (so a joiner that missed the owner's adverts waits).
//!   "Live" includes suspects: only probes turn silence into death.
//! - A member that joins ranking above the owner takes it over; so does, at any time, one with
//!   a strictly higher priority than the owner (the rank's other keys are compared only at
//!   join, because histories converge after it and a later merge must not move the address).
//! - Two owners that hear each other (a heal, a thawed owner): the lower-ranked one removes
//!   the address at once, and the other sends gratuitous ARP again. Each compares its current
//!   history length with the other's advertised one; lengths only grow, so both cannot find
//!   the other better, and without new events both reach the same verdict.

use std::time::Instant;

use super::{Cluster, State, ADDRESS_REFRESH};
use crate::garp::Burst;
use crate::history::EventKind;
use crate::output::{Notice, Output, TakeoverReason};

impl Cluster {
    /// Ends an input: ownership decided, then new events recorded and pushed.
    pub(super) fn settle(&mut self, now: Instant) {
        match self.state {
            State::Owner => self.defend(now),
            State::Member => self.elect(now),
            State::Joining { .. } | State::Left => {}
        }
        if self.state == State::Owner {
            self.record_joins(now);
        }
        self.flush_records();
    }

    fn defend(&mut self, now: Instant) {
        let mine = self.my_rank();
        let better = self
            .members
            .values()
            .filter(|m| m.is_owner() && m.rank() > mine)
            .max_by(|a, b| a.rank().cmp(&b.rank()))
            .map(|m| m.name.clone());
        if let Some(to) = better {
            self.give_up(now, &to);
            return;
        }
        let others: Vec<String> = self
            .members
            .values()
            .filter(|m| m.is_owner())
            .map(|m| m.name.clone())
            .collect();
        self.conflicts.retain(|n| others.contains(n));
        let mut fresh = false;
        for o in others {
            if !self.conflicts.contains(&o) {
                self.conflicts.push(o.clone());
                self.notice(Notice::Conflict { other: o });
                fresh = true;
            }
        }
        if fresh {
            // The loser yields on hearing this; the gateway may have followed its ARP.
            self.start_garp(now);
            self.send_advert(now);
        }
    }

    fn elect(&mut self, now: Instant) {
        if let Some(o) = self.followed_owner() {
            if self.cfg.priority > o.advert.priority && self.ranks_first() {
                self.take_over(now, TakeoverReason::Preempted);
            }
            return;
        }
        if self.waiting_for_unknown_owner() || !self.ranks_first() {
            return;
        }
        let reason = if self.era == 0 {
            TakeoverReason::Founded
        } else {
            TakeoverReason::Elected
        };
        self.take_over(now, reason);
    }

    fn ranks_first(&self) -> bool {
        let mine = self.my_rank();
        self.members.values().all(|m| m.rank() < mine)
    }

    fn waiting_for_unknown_owner(&self) -> bool {
        self.members.values().any(|m| {
            let o = m.advert.owner.as_str();
            !o.is_empty()
                && o != self.cfg.node
                && !self.members.contains_key(o)
                && !self.tombstones.contains_key(o)
        })
    }

    /// Discovery is over (its time ran out, or an owner spoke).
    pub(super) fn finish_join(&mut self, now: Instant) {
        self.state = State::Member;
        let mine = self.my_rank();
        let owner = self.followed_owner().map(|o| (o.era, o.rank() < mine));
        let established = self.members.values().map(|m| m.era).max().unwrap_or(0);
        match owner {
            Some((era, outranked)) => {
                self.adopt_era(era);
                if outranked {
                    self.take_over(now, TakeoverReason::Preempted);
                    return;
                }
            }
            None if established != 0 => self.adopt_era(established),
            None => {}
        }
        self.send_advert(now);
    }

    pub(super) fn adopt_era(&mut self, era: u32) {
        if era != 0 {
            self.era = era;
            self.history.note_era(era);
        }
    }

    fn take_over(&mut self, now: Instant, reason: TakeoverReason) {
        if self.era == 0 {
            self.era = self.history.era() + 1;
            self.history.note_era(self.era);
            self.notice(Notice::Founded { era: self.era });
        }
        self.state = State::Owner;
        self.holds_address = true;
        self.out.push_back(Output::AddAddress);
        self.start_garp(now);
        self.next_refresh = Some(now + ADDRESS_REFRESH);
        self.metrics.takeovers_total += 1;
        self.conflicts.clear();
        self.pull = None;
        self.notice(Notice::Owner { reason });
        for (node, inc) in std::mem::take(&mut self.departed) {
            let back = self
                .members
                .get(&node)
                .is_some_and(|m| m.incarnation == inc);
            if !back {
                self.record_leave(now, &node, inc);
            }
        }
        self.record_joins(now);
        let (me, inc) = (self.cfg.node.clone(), self.cfg.incarnation);
        self.record(now, EventKind::Takeover, &me, inc);
        self.send_advert(now);
    }

    fn give_up(&mut self, now: Instant, to: &str) {
        self.state = State::Member;
        if self.holds_address {
            self.holds_address = false;
            self.out.push_back(Output::RemoveAddress);
        }
        self.garp = None;
        self.next_refresh = None;
        self.conflicts.clear();
        if let Some(era) = self.members.get(to).map(|m| m.era) {
            self.adopt_era(era);
        }
        self.notice(Notice::Yielded { to: to.to_owned() });
        self.send_advert(now);
    }

    pub(super) fn start_garp(&mut self, now: Instant) {
        let mut b = Burst::new(now);
        if b.fire(now) {
            self.out.push_back(Output::SendGratuitousArp);
        }
        self.garp = Some(b);
    }

    /// A member died (probes unanswered) or said goodbye.
    pub(super) fn member_gone(&mut self, now: Instant, name: &str, left: bool) {
        let Some(m) = self.members.remove(name) else {
            return;
        };
        self.tombstones.insert(name.to_owned(), now);
        if self.pull.as_ref().is_some_and(|p| p.peer == name) {
            self.pull = None;
        }
        self.conflicts.retain(|n| n != name);
        if self.state == State::Owner {
            self.record_leave(now, name, m.incarnation);
        } else if self.departed.len() < super::MAX_MEMBERS {
            self.departed.push((name.to_owned(), m.incarnation));
        }
        self.notice(Notice::MemberDown {
            node: name.to_owned(),
            left,
        });
    }

    /// An advert from `name` while this node is a member: follow its era, and pull history if
    /// it is our owner and ours differs.
    pub(super) fn follow(&mut self, now: Instant, name: &str) {
        let Some(o) = self.followed_owner() else {
            return;
        };
        if o.name != name {
            return;
        }
        let (era, digest, addr) = (o.era, o.advert.digest, o.addr);
        self.adopt_era(era);
        let rested = self
            .last_pull
            .is_none_or(|t| now >= t + self.cfg.timing.advert_interval);
        if digest != self.history.digest() && self.pull.is_none() && rested {
            self.start_pull(now, name, addr);
        }
    }
}
