//! The rules of the etcd election, applied after every input, in this order:
//!
//! 1. **Safety.** The address is held only while the owner key is under this node's lease and
//!    that lease is certainly alive on the server; otherwise it goes at once.
//! 2. **Priority preempts.** An owner that sees a live member of strictly higher priority
//!    removes the address and deletes the key; that member, ranked first, claims it at once.
//!    Equal priorities never move the address: the holder keeps it (no history is shared
//!    through etcd, and the name alone must not take the address from a healthy owner).
//! 3. **Take.** The key is this node's (a claim won, or found so after a reconnect): add the
//!    address and start the gratuitous ARP burst, exactly as the multicast owner does.
//! 4. **Claim.** The key is free: the best-ranked live member (priority, then name) claims at
//!    once, the `k`-th after `k ×` [`CLAIM_STAGGER`].

use std::time::Instant;

use super::{LeaseElection, LeaseNotice, LeaseOutput, Peer, CLAIM_STAGGER};
use crate::garp::Burst;
use crate::rank::Rank;

impl LeaseElection {
    pub(super) fn decide(&mut self, now: Instant) {
        let safe = self.safe_until.is_some_and(|t| now < t);
        if self.holding && !safe {
            self.remove(
                now,
                Some("etcd did not renew the lease in time, so it may expire"),
            );
        } else if self.holding && !self.mine() {
            self.remove(
                now,
                Some("the owner key is no longer under this node's lease"),
            );
        }
        if self.holding && self.connected && !self.waiting {
            self.yield_to_better(now);
        }
        if !self.holding && safe && self.connected && self.mine() && !self.waiting {
            if self.better_peer().is_some() {
                self.yield_to_better(now);
            } else {
                self.take(now);
            }
        }
        if safe && self.claim_at().is_some_and(|t| t <= now) {
            self.claiming = true;
            self.out.push_back(LeaseOutput::Claim);
        }
    }

    /// When this node claims the free key, if it will.
    pub(super) fn claim_at(&self) -> Option<Instant> {
        if self.owner.is_some() || self.claiming || self.waiting || !self.connected || self.left {
            return None;
        }
        let at = self.free_since? + CLAIM_STAGGER * self.position();
        // A lease that lapses first would not be allowed to claim: no timer for that.
        (self.safe_until? > at).then_some(at)
    }

    /// How many live members rank above this one.
    fn position(&self) -> u32 {
        let me = self.rank();
        self.peers.values().filter(|p| rank(p) > me).count() as u32
    }

    fn rank(&self) -> Rank<'_> {
        Rank {
            priority: self.config.priority,
            events: 0,
            name: &self.config.node,
        }
    }

    /// The best live member of strictly higher priority than this one.
    fn better_peer(&self) -> Option<&Peer> {
        self.peers
            .values()
            .filter(|p| p.priority > self.config.priority)
            .max_by(|a, b| rank(a).cmp(&rank(b)))
    }

    fn yield_to_better(&mut self, now: Instant) {
        let Some(to) = self.better_peer().map(|p| p.name.clone()) else {
            return;
        };
        if self.holding {
            self.remove(now, None);
        }
        self.waiting = true;
        self.out.push_back(LeaseOutput::Resign);
        self.out
            .push_back(LeaseOutput::Notice(LeaseNotice::Yielded { to }));
    }

    fn take(&mut self, now: Instant) {
        self.holding = true;
        self.takeovers += 1;
        let lifetime = self.lifetime(now);
        self.out.push_back(LeaseOutput::AddAddress { lifetime });
        let mut burst = Burst::new(now);
        if burst.fire(now) {
            self.out.push_back(LeaseOutput::SendGratuitousArp);
        }
        self.burst = Some(burst);
        self.out.push_back(LeaseOutput::Notice(LeaseNotice::Owner));
    }

    /// Removes the address; `why` is said when it was not this node's choice.
    pub(super) fn remove(&mut self, _now: Instant, why: Option<&'static str>) {
        self.holding = false;
        self.burst = None;
        self.out.push_back(LeaseOutput::RemoveAddress);
        if let Some(why) = why {
            self.out
                .push_back(LeaseOutput::Notice(LeaseNotice::Lost { why }));
        }
    }
}

fn rank(p: &Peer) -> Rank<'_> {
    Rank {
        priority: p.priority,
        events: 0,
        name: &p.name,
    }
}
