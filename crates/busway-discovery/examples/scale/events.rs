//! The record changes in flight and when each watcher saw them.
//!
//! Writers and watchers run in this one process, so one monotonic clock times both ends: a
//! change's start is taken just before its write is sent (so the figure includes etcd's commit,
//! fsync and all), and each watcher's arrival when its `Update` comes out of busway-discovery's
//! broadcast, which is after the view was replaced. A join is told apart by the sequence
//! number in its record's annotations; a leave (a `Remove` carries only the name) by the name,
//! which has at most one leave in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The annotation that carries a join's sequence number.
pub const SEQ: &str = "scale-seq";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Every node joining at once, as at a cold start.
    Ramp,
    /// The steady churn.
    Churn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Join,
    Leave,
}

/// A change every watcher has seen.
#[derive(Debug)]
pub struct Done {
    pub phase: Phase,
    pub kind: Kind,
    /// Until the write was answered.
    pub write: Option<Duration>,
    /// Until each watcher had it.
    pub each: Vec<Duration>,
}

impl Done {
    /// Until the last watcher had it: the change is in every view.
    pub fn all(&self) -> Duration {
        self.each.iter().copied().max().unwrap_or_default()
    }
}

/// A change some watcher has not seen (yet).
#[derive(Debug)]
struct Pending {
    phase: Phase,
    kind: Kind,
    name: String,
    start: Instant,
    write: Option<Duration>,
    seen: Vec<Option<Duration>>,
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<u64, Pending>,
    leaving: HashMap<String, u64>,
    done: Vec<Done>,
    /// Arrivals that matched no change in flight (a bug in the bench, or a watcher that saw a
    /// change twice).
    strays: u64,
}

#[derive(Debug)]
pub struct Events {
    watchers: usize,
    next: AtomicU64,
    inner: Mutex<Inner>,
}

impl Events {
    pub fn new(watchers: usize) -> Events {
        Events {
            watchers,
            next: AtomicU64::new(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A number for the next change, to put in its record before the write.
    pub fn seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The write of change `seq` is about to be sent: its clock starts.
    pub fn sent(&self, seq: u64, phase: Phase, kind: Kind, name: &str) {
        let mut g = self.lock();
        if kind == Kind::Leave {
            g.leaving.insert(name.to_string(), seq);
        }
        let p = Pending {
            phase,
            kind,
            name: name.to_string(),
            start: Instant::now(),
            write: None,
            seen: vec![None; self.watchers],
        };
        g.pending.insert(seq, p);
    }

    /// etcd answered the write of `seq`.
    pub fn answered(&self, seq: u64) {
        if let Some(p) = self.lock().pending.get_mut(&seq) {
            p.write = Some(p.start.elapsed());
        }
    }

    /// The write of `seq` failed: it changes nothing, so nothing is waited for.
    pub fn failed(&self, seq: u64) {
        let mut g = self.lock();
        if let Some(p) = g.pending.remove(&seq) {
            if g.leaving.get(&p.name) == Some(&seq) {
                g.leaving.remove(&p.name);
            }
        }
    }

    /// Watcher `w` has the join numbered `seq`.
    pub fn saw_join(&self, w: usize, seq: u64) {
        let now = Instant::now();
        let mut g = self.lock();
        g.arrive(w, seq, now);
    }

    /// Watcher `w` no longer has `name`.
    pub fn saw_leave(&self, w: usize, name: &str) {
        let now = Instant::now();
        let mut g = self.lock();
        match g.leaving.get(name).copied() {
            Some(seq) => g.arrive(w, seq, now),
            None => g.strays += 1,
        }
    }

    /// The changes every watcher has seen, taken out; and how many were stray arrivals.
    pub fn take_done(&self) -> (Vec<Done>, u64) {
        let mut g = self.lock();
        (std::mem::take(&mut g.done), g.strays)
    }

    /// The changes still waited for: (phase, kind, watchers that saw it, age).
    pub fn pending(&self) -> Vec<(Phase, Kind, usize, Duration)> {
        self.lock()
            .pending
            .values()
            .map(|p| {
                let seen = p.seen.iter().filter(|s| s.is_some()).count();
                (p.phase, p.kind, seen, p.start.elapsed())
            })
            .collect()
    }
}

impl Inner {
    fn arrive(&mut self, w: usize, seq: u64, now: Instant) {
        let Some(p) = self.pending.get_mut(&seq) else {
            self.strays += 1;
            return;
        };
        match p.seen.get_mut(w) {
            Some(slot @ None) => *slot = Some(now.saturating_duration_since(p.start)),
            _ => {
                self.strays += 1;
                return;
            }
        }
        if p.seen.iter().any(Option::is_none) {
            return;
        }
        let Some(p) = self.pending.remove(&seq) else {
            return;
        };
        if self.leaving.get(&p.name) == Some(&seq) {
            self.leaving.remove(&p.name);
        }
        self.done.push(Done {
            phase: p.phase,
            kind: p.kind,
            write: p.write,
            each: p.seen.into_iter().flatten().collect(),
        });
    }
}

/// The nearest-rank percentile `q` (0..=1) of `sorted`.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let v = sorted;
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}
