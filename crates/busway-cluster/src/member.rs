//! What this node knows of one other member, and when its silence turns into probes and death.
//!
//! A member is alive while its adverts come. After `dead_after` missed adverts (by its own
//! advert interval, plus a quarter interval of grace) it is suspected, and probed directly
//! `probe_attempts` times, `probe_interval` apart. Any advert or probe reply clears the
//! suspicion; silence through the last probe's wait is death. Adverts alone never kill: under
//! 5% loss, three adverts in a row are lost about once in half an hour per pair of members,
//! and three probe round trips as well about once in a thousand such cases.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{Timing, MAX_ADVERT_INTERVAL, MIN_ADVERT_INTERVAL};
use crate::rank::Rank;
use crate::wire::{Advert, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// Probes sent so far, when the next is due, and the nonce they carry.
    Suspect {
        probes: u32,
        next: Instant,
        nonce: u64,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) name: String,
    /// Where its datagrams come from: where probes and history requests go.
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u32,
    pub(crate) era: u32,
    pub(crate) advert: Advert,
    pub(crate) last_seen: Instant,
    pub(crate) liveness: Liveness,
}

/// What a member's timer asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// Send a probe with this nonce; `first` when the suspicion just began.
    Probe {
        nonce: u64,
        first: bool,
    },
    Dead,
}

impl Member {
    pub(crate) fn new(
        name: &str,
        addr: SocketAddr,
        incarnation: u32,
        era: u32,
        advert: Advert,
        now: Instant,
    ) -> Member {
        Member {
            name: name.to_owned(),
            addr,
            incarnation,
            era,
            advert,
            last_seen: now,
            liveness: Liveness::Alive,
        }
    }

    /// Its advert interval as it declared it, kept within what we accept.
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.advert.interval_ms))
            .clamp(MIN_ADVERT_INTERVAL, MAX_ADVERT_INTERVAL)
    }

    pub(crate) fn rank(&self) -> Rank<'_> {
        Rank {
            priority: self.advert.priority,
            events: self.advert.events,
            name: &self.name,
        }
    }

    pub(crate) fn is_owner(&self) -> bool {
        self.advert.role == Role::Owner
    }

    /// Evidence of life: an advert, a probe reply, or a probe it sent us.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_seen = now;
        self.liveness = Liveness::Alive;
    }

    /// When its timer next needs us.
    pub(crate) fn deadline(&self, t: &Timing) -> Instant {
        match self.liveness {
            Liveness::Alive => self.last_seen + t.suspect_after(self.interval()),
            Liveness::Suspect { next, .. } => next,
        }
    }

    /// Advances its timer to `now`. Probes are spaced from the moment suspicion starts, not
    /// from when it should have: a node that was itself stopped for a while and wakes to find
    /// everyone silent probes them all, and gives the answers time to come.
    pub(crate) fn on_timer(&mut self, now: Instant, t: &Timing, fresh_nonce: u64) -> Due {
        if now < self.deadline(t) {
            return Due::Nothing;
        }
        match self.liveness {
            Liveness::Alive => {
                self.liveness = Liveness::Suspect {
                    probes: 1,
                    next: now + t.probe_interval,
                    nonce: fresh_nonce,
                };
                Due::Probe {
                    nonce: fresh_nonce,
                    first: true,
                }
            }
            Liveness::Suspect { probes, nonce, .. } if probes < t.probe_attempts => {
                self.liveness = Liveness::Suspect {
                    probes: probes + 1,
                    next: now + t.probe_interval,
                    nonce,
                };
                Due::Probe {
                    nonce,
                    first: false,
                }
            }
            Liveness::Suspect { .. } => Due::Dead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(now: Instant) -> Member {
        let advert = Advert {
            role: Role::Owner,
            priority: 100,
            events: 0,
            digest: 0,
            owner: String::new(),
            bus: String::new(),
            interval_ms: 200,
        };
        Member::new("a", "198.18.0.2:7946".parse().unwrap(), 1, 1, advert, now)
    }

    #[test]
    fn silence_then_three_probes_then_death() {
        let t0 = Instant::now();
        let t = Timing::default();
        let mut m = member(t0);
        assert_eq!(m.deadline(&t), t0 + Duration::from_millis(650));
        assert_eq!(
            m.on_timer(t0 + Duration::from_millis(649), &t, 1),
            Due::Nothing
        );
        let mut now = t0 + Duration::from_millis(650);
        assert_eq!(
            m.on_timer(now, &t, 7),
            Due::Probe {
                nonce: 7,
                first: true
            }
        );
        for _ in 0..2 {
            now = m.deadline(&t);
            assert_eq!(
                m.on_timer(now, &t, 8),
                Due::Probe {
                    nonce: 7,
                    first: false
                }
            );
        }
        now = m.deadline(&t);
        assert_eq!(now, t0 + Duration::from_millis(800));
        assert_eq!(m.on_timer(now, &t, 9), Due::Dead);
    }

    #[test]
    fn an_answer_clears_the_suspicion() {
        let t0 = Instant::now();
        let t = Timing::default();
        let mut m = member(t0);
        let now = t0 + Duration::from_millis(700);
        assert!(matches!(m.on_timer(now, &t, 1), Due::Probe { .. }));
        m.heard(now + Duration::from_millis(1));
        assert_eq!(m.liveness, Liveness::Alive);
        assert_eq!(m.deadline(&t), now + Duration::from_millis(651));
    }

    #[test]
    fn a_peer_interval_out_of_range_is_clamped() {
        let t0 = Instant::now();
        let mut m = member(t0);
        m.advert.interval_ms = 0;
        assert_eq!(m.interval(), MIN_ADVERT_INTERVAL);
        m.advert.interval_ms = u32::MAX;
        assert_eq!(m.interval(), MAX_ADVERT_INTERVAL);
    }
}
