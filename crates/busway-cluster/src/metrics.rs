//! What the node exports about the cluster, and the rejected-datagram log limit.

use std::time::{Duration, Instant};

/// Why a datagram was ignored: the `reason` label of
/// `busway_cluster_adverts_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Signature,
    Cluster,
    Malformed,
    Replay,
}

impl RejectReason {
    pub const ALL: [RejectReason; 4] = [
        RejectReason::Signature,
        RejectReason::Cluster,
        RejectReason::Malformed,
        RejectReason::Replay,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RejectReason::Signature => "signature",
            RejectReason::Cluster => "cluster",
            RejectReason::Malformed => "malformed",
            RejectReason::Replay => "replay",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters and gauges for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// `busway_cluster_owner`.
    pub owner: bool,
    /// `busway_cluster_members`: live members, this node included.
    pub members: usize,
    /// `busway_cluster_takeovers_total`: times this node took the address.
    pub takeovers_total: u64,
    /// `busway_cluster_adverts_rejected_total`, by [`RejectReason`] order.
    pub rejected: [u64; 4],
    /// Members suspected (adverts missed), whether or not the probes then found them alive.
    pub suspicions_total: u64,
    /// Probes sent.
    pub probes_total: u64,
    pub era: u32,
    pub history_events: usize,
}

impl Metrics {
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()]
    }

    pub(crate) fn reject(&mut self, reason: RejectReason) {
        self.rejected[reason.index()] += 1;
    }
}

/// A rejection is reported at most once a second per reason, with the number held back since,
/// so a flood of forgeries cannot flood the log.
#[derive(Debug, Default)]
pub(crate) struct RejectLog {
    last: [Option<Instant>; 4],
    held: [u64; 4],
}

impl RejectLog {
    /// `Some(held back since the last report)` if this one should be reported.
    pub(crate) fn report(&mut self, reason: RejectReason, now: Instant) -> Option<u64> {
        let i = reason.index();
        match self.last[i] {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => {
                self.held[i] += 1;
                None
            }
            _ => {
                self.last[i] = Some(now);
                Some(std::mem::take(&mut self.held[i]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_a_second_per_reason() {
        let t = Instant::now();
        let mut log = RejectLog::default();
        assert_eq!(log.report(RejectReason::Replay, t), Some(0));
        for _ in 0..5 {
            assert_eq!(log.report(RejectReason::Replay, t), None);
        }
        assert_eq!(log.report(RejectReason::Signature, t), Some(0));
        assert_eq!(
            log.report(RejectReason::Replay, t + Duration::from_secs(1)),
            Some(5)
        );
    }

    #[test]
    fn labels() {
        let labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels, ["signature", "cluster", "malformed", "replay"]);
    }
}
