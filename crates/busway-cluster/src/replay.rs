//! Which sequence numbers each sender has used: a replayed datagram is refused even though its
//! signature is good.
//!
//! A sender's numbers start from its boot time in microseconds and grow by one per datagram,
//! so they keep growing across its restarts without any state of its own. A window of the last
//! 64 numbers (as IPsec keeps) lets a unicast reply overtaken by a multicast advert still in;
//! anything older than the window, or seen before, is a replay.

use std::collections::HashMap;

/// Senders remembered; past this the one heard from longest ago is forgotten.
pub const MAX_TRACKED: usize = 256;
const WINDOW: u64 = 64;

#[derive(Debug, Default)]
pub(crate) struct ReplayGuard {
    senders: HashMap<String, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    max: u64,
    /// Bit `i` set: `max - i` was seen.
    seen: u64,
}

impl ReplayGuard {
    /// Whether `seq` from `node` is new; records it if so. Call only for datagrams whose
    /// signature verified, so forgeries cannot move a window.
    pub(crate) fn accept(&mut self, node: &str, seq: u64) -> bool {
        if let Some(w) = self.senders.get_mut(node) {
            return w.accept(seq);
        }
        if self.senders.len() >= MAX_TRACKED {
            if let Some(oldest) = self
                .senders
                .iter()
                .min_by_key(|(_, w)| w.max)
                .map(|(k, _)| k.clone())
            {
                self.senders.remove(&oldest);
            }
        }
        self.senders
            .insert(node.to_owned(), Window { max: seq, seen: 1 });
        true
    }
}

impl Window {
    fn accept(&mut self, seq: u64) -> bool {
        if seq > self.max {
            let shift = seq - self.max;
            self.seen = if shift >= WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.max = seq;
            return true;
        }
        let back = self.max - seq;
        if back >= WINDOW || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_once() {
        let mut g = ReplayGuard::default();
        assert!(g.accept("a", 100));
        assert!(!g.accept("a", 100));
        assert!(g.accept("a", 102));
        assert!(g.accept("a", 101), "late but inside the window");
        assert!(!g.accept("a", 101));
        assert!(g.accept("b", 100), "another sender");
        assert!(g.accept("a", 500));
        assert!(!g.accept("a", 102), "older than the window");
        assert!(!g.accept("a", 436));
        assert!(g.accept("a", 437));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut g = ReplayGuard::default();
        for i in 0..(MAX_TRACKED as u64 + 10) {
            assert!(g.accept(&format!("n{i}"), 1000 + i));
        }
        assert_eq!(g.senders.len(), MAX_TRACKED);
        assert!(!g.accept(&format!("n{}", MAX_TRACKED + 9), 1000));
    }
}
