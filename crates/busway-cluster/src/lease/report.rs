//! `GET /v1/cluster` and the metrics of the etcd election, in the multicast backend's shapes.
//!
//! With etcd a member record exists only while its lease lives, so every member listed is live
//! as of etcd's last word: `last_seen_ms` is 0 while the session is up, and the time since it
//! went down otherwise. The history is what this node saw since it started (era 1): the
//! election itself is one key in etcd, and nothing of it is shared or kept in `state_dir`.

use std::time::Instant;

use super::LeaseElection;
use crate::metrics::Metrics;
use crate::view::{history_view, ClusterView, MemberView};

impl LeaseElection {
    pub fn view(&self, now: Instant) -> ClusterView {
        let owner = self.owner.as_ref().map(|h| h.name.clone());
        let role = |name: &str| {
            if owner.as_deref() == Some(name) {
                "owner"
            } else {
                "member"
            }
        };
        let seen = self
            .down_since
            .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
        let me = &self.config;
        let mut members = vec![MemberView {
            name: me.node.clone(),
            address: me.bus_address.clone(),
            incarnation: me.incarnation,
            role: role(&me.node),
            last_seen_ms: 0,
        }];
        members.extend(self.peers.values().map(|p| MemberView {
            name: p.name.clone(),
            address: p.bus.clone(),
            incarnation: p.incarnation,
            role: role(&p.name),
            last_seen_ms: seen,
        }));
        ClusterView {
            era: self.history.era(),
            owner,
            self_name: me.node.clone(),
            members,
            history: history_view(&self.history),
        }
    }

    pub fn metrics(&self) -> Metrics {
        Metrics {
            owner: self.holding,
            members: 1 + self.peers.len(),
            takeovers_total: self.takeovers,
            era: self.history.era(),
            history_events: self.history.len(),
            ..Metrics::default()
        }
    }
}
