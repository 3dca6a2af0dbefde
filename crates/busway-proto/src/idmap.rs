//! Maps keyed by stream id, hashed by one multiplication instead of SipHash.
//!
//! Lookups by stream id are on every frame and every stream call. Ids are chosen by the peer,
//! though (only their order is checked), so the hash must not let it pick colliding ones: the
//! multiplier is odd and random per map — multiply-shift hashing, a universal family — so the
//! peer cannot know which ids collide.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` from stream ids.
pub type IdMap<V> = HashMap<u64, V, IdHash>;

/// An empty [`IdMap`].
pub fn id_map<V>() -> IdMap<V> {
    HashMap::with_hasher(IdHash::new())
}

/// Builds [`IdHasher`]s that share one random odd multiplier.
#[derive(Clone, Debug)]
pub struct IdHash {
    multiplier: u64,
}

impl IdHash {
    fn new() -> IdHash {
        // std's per-process random keys, folded into one odd number.
        let multiplier = RandomState::new().hash_one(0x6275_7377_6179u64) | 1;
        IdHash { multiplier }
    }
}

impl Default for IdHash {
    fn default() -> IdHash {
        IdHash::new()
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            multiplier: self.multiplier,
            state: 0,
        }
    }
}

#[derive(Debug)]
pub struct IdHasher {
    multiplier: u64,
    state: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; any other input still hashes, byte by byte.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.state = (self.state ^ id).wrapping_mul(self.multiplier);
    }

    fn finish(&self) -> u64 {
        // The high bits of a product are the well mixed ones; hashbrown uses both ends.
        self.state ^ (self.state >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_over_buckets() {
        let h = IdHash::new();
        let mut buckets = [0u32; 64];
        for id in (1..20_000u64).step_by(2) {
            buckets[(h.hash_one(id) % 64) as usize] += 1;
        }
        let (lo, hi) = (buckets.iter().min().unwrap(), buckets.iter().max().unwrap());
        assert!(*hi < 2 * *lo, "{buckets:?}");
        let mut m = id_map();
        m.insert(7u64, "seven");
        assert_eq!(m.get(&7), Some(&"seven"));
    }
}
