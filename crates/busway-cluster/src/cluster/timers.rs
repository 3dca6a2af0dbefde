//! The clock: adverts, the end of discovery, suspicion and probes, ARP bursts, address
//! refreshes and history pulls.

use std::time::Instant;

use super::{Cluster, State, ADDRESS_REFRESH, TOMBSTONE};
use crate::history::sync::Step;
use crate::member::Due;
use crate::output::Output;
use crate::wire::{Body, Probe};

impl Cluster {
    /// When [`Cluster::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Left {
            return None;
        }
        let t = &self.cfg.timing;
        let mut next = self.next_advert;
        let mut at = |i: Option<Instant>| {
            if let Some(i) = i {
                next = next.min(i);
            }
        };
        if let State::Joining { until } = self.state {
            at(Some(until));
        }
        for m in self.members.values() {
            at(Some(m.deadline(t)));
        }
        at(self.garp.as_ref().and_then(|g| g.due()));
        at(self.next_refresh);
        at(self.pull.as_ref().map(|p| p.deadline));
        Some(next)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Left {
            return;
        }
        if now >= self.next_advert {
            self.send_advert(now);
        }
        if let State::Joining { until } = self.state {
            if now >= until {
                self.finish_join(now);
            }
        }
        self.probe_due(now);
        if let Some(g) = self.garp.as_mut() {
            if g.fire(now) {
                self.out.push_back(Output::SendGratuitousArp);
            }
        }
        if let Some(at) = self.next_refresh {
            if now >= at {
                self.out.push_back(Output::RefreshAddress);
                self.next_refresh = Some(now + ADDRESS_REFRESH);
            }
        }
        self.pull_due(now);
        self.tombstones
            .retain(|_, t| now.duration_since(*t) < TOMBSTONE);
        self.settle(now);
    }

    fn probe_due(&mut self, now: Instant) {
        let t = self.cfg.timing;
        let mut dead = Vec::new();
        let mut probes = Vec::new();
        let mut nonce = self.seq;
        for m in self.members.values_mut() {
            nonce += 1;
            match m.on_timer(now, &t, nonce) {
                Due::Nothing => {}
                Due::Probe { nonce, first } => probes.push((m.addr, m.name.clone(), nonce, first)),
                Due::Dead => dead.push(m.name.clone()),
            }
        }
        for (addr, target, nonce, first) in probes {
            if first {
                self.metrics.suspicions_total += 1;
            }
            self.metrics.probes_total += 1;
            self.send(addr, Body::Probe(Probe { target, nonce }));
        }
        for name in dead {
            self.member_gone(now, &name, false);
        }
    }

    fn pull_due(&mut self, now: Instant) {
        let Some(p) = self.pull.as_mut() else {
            return;
        };
        if now < p.deadline {
            return;
        }
        match p.on_timeout() {
            Step::Again => self.pull_request(now),
            _ => {
                self.pull = None;
                self.last_pull = Some(now);
            }
        }
    }
}
