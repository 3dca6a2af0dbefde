//! The resumption tickets a dialling node holds for one peer (CONTRACT section 10, 0-RTT).
//!
//! The peer accepts each ticket once, so a ticket is taken out when a dial uses it, never
//! shared by two dials; the peer hands a fresh one to every transport it accepts. A few are
//! kept so that all of a pool's transports can resume after a restart of the peer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use busway_proto::Ticket;

/// Tickets kept per peer: one per transport of the largest pools people run, with room.
const KEEP: usize = 8;

#[derive(Debug, Default)]
pub struct Tickets(Mutex<VecDeque<(Ticket, Instant)>>);

impl Tickets {
    /// Keeps `t`, received now; the oldest goes when there are too many.
    pub fn keep(&self, t: Ticket) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= KEEP {
            q.pop_front();
        }
        q.push_back((t, Instant::now()));
    }

    /// The newest ticket still inside its lifetime, taken out; expired ones are dropped.
    pub fn take(&self) -> Option<Ticket> {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((t, at)) = q.pop_back() {
            if at.elapsed() < t.lifetime {
                return Some(t);
            }
        }
        None
    }

    /// The tickets still inside their lifetime, each with what is left of it, oldest first.
    pub fn live(&self) -> Vec<(Ticket, std::time::Duration)> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter()
            .filter_map(|(t, at)| {
                t.lifetime
                    .checked_sub(at.elapsed())
                    .map(|left| (t.clone(), left))
            })
            .filter(|(_, left)| !left.is_zero())
            .collect()
    }

    /// Forgets them all: after a change of credentials they would resume the old trust.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
