//! When the owner sends gratuitous ARP: a burst right after it takes the address, and the same
//! burst again after a heal, so a gateway whose cache still names the other owner follows.
//!
//! The first four go out within 200 ms (the target is the gateway following within 100 ms;
//! one lost frame must not miss it), then 0.5, 1 and 5 s later for caches that were busy or
//! lost the first ones (keepalived sends five, then five more after 5 s).

use std::time::{Duration, Instant};

/// Offsets from the start of a burst.
pub const GARP_SCHEDULE: [Duration; 7] = [
    Duration::from_millis(0),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(5000),
];

#[derive(Debug, Clone)]
pub(crate) struct Burst {
    start: Instant,
    next: usize,
}

impl Burst {
    pub(crate) fn new(start: Instant) -> Burst {
        Burst { start, next: 0 }
    }

    pub(crate) fn due(&self) -> Option<Instant> {
        GARP_SCHEDULE.get(self.next).map(|d| self.start + *d)
    }

    /// Whether one is due at `now`. Slots missed while the process was stopped are folded
    /// into this one: a late burst is one ARP, not a flood.
    pub(crate) fn fire(&mut self, now: Instant) -> bool {
        let mut fired = false;
        while let Some(at) = self.due() {
            if at > now {
                break;
            }
            fired = true;
            self.next += 1;
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_and_late_slots() {
        let t = Instant::now();
        let mut b = Burst::new(t);
        assert!(b.fire(t));
        assert!(!b.fire(t));
        assert_eq!(b.due(), Some(t + Duration::from_millis(50)));
        assert!(b.fire(t + Duration::from_millis(600)));
        assert_eq!(b.due(), Some(t + Duration::from_millis(1000)));
        assert!(b.fire(t + Duration::from_secs(9)));
        assert_eq!(b.due(), None);
    }
}
