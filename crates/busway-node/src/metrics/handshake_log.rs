//! [`HandshakeLog`] lets the end of a bus connection whose peer proved nothing through to the
//! log at most once per second per reason.
//!
//! Anyone who can reach a bus listener can open connections that fail their handshake (a wrong
//! secret, plaintext against TLS, a hang-up after the Hello), as fast as the node accepts them.
//! A line for each would make such a flood cost the node a formatted write per connection and
//! fill its journal, where rate limiting would then hide other lines. The metrics count every
//! one (`busway_handshake_failures_total{reason}`); the log says that it is happening, from
//! which address last, and how many it left out since its previous line for that reason.
//! A reason is a fixed label (the protocol's error label, or the kind of a TLS failure), so
//! the map holds a handful of entries at most.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often a line per reason may be logged.
const EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Last {
    at: Instant,
    /// Ends left out of the log since `at`.
    suppressed: u64,
}

#[derive(Debug, Default)]
pub struct HandshakeLog {
    last: Mutex<HashMap<&'static str, Last>>,
}

impl HandshakeLog {
    /// Whether an end for `reason` should be logged now, and if so how many the log left out
    /// since its previous line for that reason. `None`: stay quiet.
    pub fn admit(&self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(reason) {
            Some(l) if now.duration_since(l.at) < EVERY => {
                l.suppressed += 1;
                None
            }
            Some(l) => {
                l.at = now;
                Some(std::mem::take(&mut l.suppressed))
            }
            None => {
                let fresh = Last {
                    at: now,
                    suppressed: 0,
                };
                last.insert(reason, fresh);
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn once_per_second_per_reason() {
        let log = HandshakeLog::default();
        assert_eq!(log.admit("auth"), Some(0));
        for _ in 0..4_999 {
            assert_eq!(log.admit("auth"), None);
        }
        assert_eq!(
            log.admit("timeout"),
            Some(0),
            "another reason, its own second"
        );
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(log.admit("auth"), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            log.admit("auth"),
            Some(5_000),
            "the line says how many it left out"
        );
        assert_eq!(log.admit("auth"), None);
    }
}
