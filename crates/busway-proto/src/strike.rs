//! The strike register: the ids of the resumption tickets used, each kept until its ticket
//! expires, so that a ticket is accepted once within its lifetime — and a replayed 0-RTT first
//! flight fails (`replay`) before any of its frames is read.

use std::collections::{HashMap, VecDeque};

/// Bytes of a ticket id.
pub const TICKET_ID_LEN: usize = 16;

/// What [`StrikeRegister::strike`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strike {
    /// First use: recorded.
    Fresh,
    /// Used before.
    Replay,
    /// The register holds `capacity` live ids: resumption is refused (the initiator falls back
    /// to a full handshake) rather than forgetting an id that is still valid.
    Full,
}

/// Used ticket ids with their expiry (Unix seconds), bounded by a capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrikeRegister {
    used: HashMap<[u8; TICKET_ID_LEN], u64>,
    /// The same ids in the order they were used, to forget expired ones from the front
    /// without scanning (tickets of one node share a lifetime, so this is also expiry order;
    /// after a change of lifetime an expired id may wait behind a live one, which is harmless).
    order: VecDeque<([u8; TICKET_ID_LEN], u64)>,
    capacity: usize,
}

impl StrikeRegister {
    pub fn new(capacity: usize) -> StrikeRegister {
        StrikeRegister {
            used: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records the use of ticket `id`, which expires at `expires`; `now` in the same clock.
    pub fn strike(&mut self, id: [u8; TICKET_ID_LEN], expires: u64, now: u64) -> Strike {
        self.forget_expired(now);
        if self.used.contains_key(&id) {
            return Strike::Replay;
        }
        if self.used.len() >= self.capacity {
            return Strike::Full;
        }
        self.used.insert(id, expires);
        self.order.push_back((id, expires));
        Strike::Fresh
    }

    /// Drops the ids whose tickets expired: those tickets fail on their expiry anyway.
    pub fn forget_expired(&mut self, now: u64) {
        while let Some(&(id, expires)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.used.remove(&id);
        }
    }

    /// Every live id and its expiry, oldest first (for persistence).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8; TICKET_ID_LEN], u64)> {
        self.order.iter().map(|(id, e)| (id, *e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_lifetime_bounded_and_forgetting() {
        let mut r = StrikeRegister::new(2);
        assert_eq!(r.strike([1; 16], 100, 0), Strike::Fresh);
        assert_eq!(r.strike([1; 16], 100, 50), Strike::Replay);
        assert_eq!(r.strike([2; 16], 110, 50), Strike::Fresh);
        assert_eq!(r.strike([3; 16], 120, 50), Strike::Full, "capped");
        assert_eq!(r.len(), 2);
        // Once the first ticket expired its id is forgotten, and there is room again.
        assert_eq!(r.strike([3; 16], 160, 100), Strike::Fresh);
        assert_eq!(r.len(), 2);
        assert_eq!(r.strike([1; 16], 100, 100), Strike::Full);
        r.forget_expired(1000);
        assert!(r.is_empty());
    }
}
