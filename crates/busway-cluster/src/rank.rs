//! The election order of section 7: highest priority, then the most history events, then the
//! lowest name. Names are unique, so two members never rank equal.

use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rank<'a> {
    pub priority: u32,
    pub events: u32,
    pub name: &'a str,
}

impl Ord for Rank<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(self.events.cmp(&other.events))
            .then_with(|| other.name.cmp(self.name))
    }
}

impl PartialOrd for Rank<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(priority: u32, events: u32, name: &str) -> Rank<'_> {
        Rank {
            priority,
            events,
            name,
        }
    }

    #[test]
    fn priority_then_events_then_lowest_name() {
        assert!(r(200, 0, "z") > r(100, 99, "a"));
        assert!(r(100, 5, "z") > r(100, 4, "a"));
        assert!(r(100, 5, "a") > r(100, 5, "b"));
        let mut v = [r(100, 5, "b"), r(100, 5, "a"), r(150, 1, "c")];
        v.sort();
        assert_eq!(v.last().unwrap().name, "c");
        assert_eq!(v[0].name, "b");
    }
}
