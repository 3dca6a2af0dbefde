//! Counting ignored records and logging each one once.
//!
//! A bad record stays in etcd until someone fixes it, and every snapshot (after a reconnect or
//! a compaction) reads it again: logging or counting it each time would flood the log with one
//! line per reconnect and make the counter measure reconnects rather than bad writes. So:
//! - a bad *write* (a key at a modification revision) is counted once, however often it is
//!   read again;
//! - a key is logged once per reason: again only when it goes bad for another reason, or after
//!   it was deleted or fixed and then went bad again.
//!
//! The memory is one entry per bad key still in etcd, so it is bounded by what etcd holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::parse::Rejected;

/// Counters by reason, shared with the [`crate::Discovery`] handle.
#[derive(Debug, Default)]
pub(crate) struct Counts([AtomicU64; 3]);

impl Counts {
    pub(crate) fn get(&self) -> Vec<(&'static str, u64)> {
        Rejected::REASONS
            .iter()
            .zip(&self.0)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }

    fn add(&self, reason: &'static str) {
        if let Some(i) = Rejected::REASONS.iter().position(|r| *r == reason) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the watcher remembers of bad keys: the reason last logged and the revision last
/// counted.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    bad: HashMap<String, (&'static str, i64)>,
}

/// What to do about one bad record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) count: bool,
    pub(crate) log: bool,
}

impl Memory {
    /// Notes that `key` at modification revision `rev` was rejected for `why`, counts it in
    /// `counts` if this write was not counted yet, and says whether to log it.
    pub(crate) fn rejected(
        &mut self,
        counts: &Counts,
        key: &str,
        rev: i64,
        why: &Rejected,
    ) -> Verdict {
        let reason = why.label();
        let before = self.bad.insert(key.to_string(), (reason, rev));
        let v = Verdict {
            count: before.is_none_or(|(_, r)| r != rev),
            log: before.is_none_or(|(l, _)| l != reason),
        };
        if v.count {
            counts.add(reason);
        }
        v
    }

    /// `key` is gone or valid now: a later bad write to it is logged again.
    pub(crate) fn forget(&mut self, key: &str) {
        self.bad.remove(key);
    }

    /// After a snapshot: forgets every key that `present` says is no longer in etcd.
    pub(crate) fn retain(&mut self, present: impl Fn(&str) -> bool) {
        self.bad.retain(|k, _| present(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(c: &Counts) -> Vec<u64> {
        c.get().into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn a_write_is_counted_once_and_a_key_logged_once_per_reason() {
        let (c, mut m) = (Counts::default(), Memory::default());
        let parse = Rejected::Parse("x".into());
        let yes = Verdict {
            count: true,
            log: true,
        };
        assert_eq!(m.rejected(&c, "k", 5, &parse), yes);
        // The same write read again (a snapshot after a reconnect): nothing.
        assert_eq!(
            m.rejected(&c, "k", 5, &parse),
            Verdict {
                count: false,
                log: false
            }
        );
        // A new bad write for the same reason: counted, not logged.
        assert_eq!(
            m.rejected(&c, "k", 6, &parse),
            Verdict {
                count: true,
                log: false
            }
        );
        // Another reason: logged.
        assert_eq!(m.rejected(&c, "k", 7, &Rejected::Key), yes);
        assert_eq!(counts(&c), [2, 1, 0]);
        // Fixed or deleted, then bad again: logged again.
        m.forget("k");
        assert_eq!(m.rejected(&c, "k", 9, &Rejected::Key), yes);
        assert_eq!(
            m.rejected(&c, "other", 9, &Rejected::Address("a".into())),
            yes
        );
        assert_eq!(counts(&c), [2, 2, 1]);
        m.retain(|k| k == "other");
        assert_eq!(m.rejected(&c, "k", 9, &Rejected::Key), yes);
        assert!(
            !m.rejected(&c, "other", 9, &Rejected::Address("a".into()))
                .log
        );
    }

    #[test]
    fn every_reason_is_reported_even_at_zero() {
        let c = Counts::default();
        assert_eq!(c.get(), [("parse", 0), ("key", 0), ("address", 0)]);
    }
}
