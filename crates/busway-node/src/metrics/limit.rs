//! The limits of CONTRACT section 10 as the metrics and the log name them: one [`Limit`] per
//! value of the `limit` label of `busway_limit_rejections_total`, and [`LimitLog`], which lets a
//! refusal through to the log at most once per second per limit and service.
//!
//! A limit is hit exactly when something is being flooded, so a line per refusal would turn a
//! flood of connections into a flood of log lines (disk, journald rate limiting that then hides
//! other lines). The counter carries the exact number; the log only says that it is happening,
//! and how many refusals it left out since its previous line.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A limit that refuses a new connection or session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `service.max_sessions`: concurrent sessions of a service at this node.
    MaxSessions,
    /// `service.max_sessions_per_client`: concurrent sessions per client IP address.
    MaxSessionsPerClient,
    /// `service.new_sessions_per_client`: the token bucket of new sessions per client IP address.
    NewSessionsPerClient,
    /// `bus.max_transports`: bus connections accepted, handshaking or established.
    MaxTransports,
}

impl Limit {
    /// Every limit, in the order the label values are registered.
    pub const ALL: [Limit; 4] = [
        Limit::MaxSessions,
        Limit::MaxSessionsPerClient,
        Limit::NewSessionsPerClient,
        Limit::MaxTransports,
    ];

    /// The value of the `limit` label, which is also the config key and the word in the log.
    pub const fn label(self) -> &'static str {
        match self {
            Limit::MaxSessions => "max_sessions",
            Limit::MaxSessionsPerClient => "max_sessions_per_client",
            Limit::NewSessionsPerClient => "new_sessions_per_client",
            Limit::MaxTransports => "max_transports",
        }
    }

    /// Every label value, for registering them at zero.
    pub fn labels() -> [&'static str; 4] {
        Limit::ALL.map(Limit::label)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How often a line per limit and service may be logged.
const EVERY: Duration = Duration::from_secs(1);

/// Keys kept before the stale ones are swept. Services come from the configuration (and `bus`
/// for `max_transports`), so this is only a guard against a caller passing outside text.
const SWEEP_ABOVE: usize = 1024;

#[derive(Debug)]
struct Last {
    at: Instant,
    /// Refusals left out of the log since `at`.
    suppressed: u64,
}

/// When each (limit, service) was last logged: one map of services per limit, so the lookup
/// borrows the service's name and a key is allocated only the first time a pair is logged.
#[derive(Debug, Default)]
pub struct LimitLog {
    last: Mutex<[HashMap<Box<str>, Last>; Limit::ALL.len()]>,
}

impl LimitLog {
    /// Whether a refusal by `limit` in `service` should be logged now, and if so how many
    /// refusals the log left out since its previous line for them. `None`: stay quiet.
    pub fn admit(&self, limit: Limit, service: &str) -> Option<u64> {
        let now = Instant::now();
        let mut all = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let last = &mut all[limit as usize];
        if let Some(l) = last.get_mut(service) {
            if now.duration_since(l.at) < EVERY {
                l.suppressed += 1;
                return None;
            }
            l.at = now;
            return Some(std::mem::take(&mut l.suppressed));
        }
        if last.len() >= SWEEP_ABOVE {
            last.retain(|_, l| now.duration_since(l.at) < EVERY);
        }
        let fresh = Last {
            at: now,
            suppressed: 0,
        };
        last.insert(service.into(), fresh);
        Some(0)
    }

    /// Logs that `limit` refused `what` ("session", "transport") in `service`, at most once per
    /// second per limit and service; `client` is the address refused, when there is one. The
    /// `suppressed` field counts the refusals left out since the previous line.
    pub fn refused(
        &self,
        limit: Limit,
        service: &str,
        what: &str,
        client: Option<&dyn fmt::Display>,
    ) {
        let Some(suppressed) = self.admit(limit, service) else {
            return;
        };
        // Displayed, not debugged: `limit=max_sessions`, the label as it is, not quoted.
        let limit = limit.label();
        match client {
            Some(client) => tracing::warn!(
                %limit,
                %service,
                %client,
                suppressed,
                "{what} refused: {limit} reached"
            ),
            None => tracing::warn!(%limit, %service, suppressed, "{what} refused: {limit} reached"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_config_keys() {
        assert_eq!(
            Limit::labels(),
            [
                "max_sessions",
                "max_sessions_per_client",
                "new_sessions_per_client",
                "max_transports"
            ]
        );
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i, "ALL is in declaration order");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn once_per_second_per_limit_and_service() {
        let log = LimitLog::default();
        assert_eq!(log.admit(Limit::MaxSessions, "chat"), Some(0));
        for _ in 0..49 {
            assert_eq!(log.admit(Limit::MaxSessions, "chat"), None);
        }
        // Another service, another limit: their own second.
        assert_eq!(log.admit(Limit::MaxSessions, "mail"), Some(0));
        assert_eq!(log.admit(Limit::MaxSessionsPerClient, "chat"), Some(0));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(log.admit(Limit::MaxSessions, "chat"), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        // The line says how many it left out.
        assert_eq!(log.admit(Limit::MaxSessions, "chat"), Some(50));
        assert_eq!(log.admit(Limit::MaxSessions, "chat"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_keys_are_swept_past_the_cap() {
        let log = LimitLog::default();
        for i in 0..SWEEP_ABOVE {
            log.admit(Limit::MaxTransports, &i.to_string());
        }
        tokio::time::advance(EVERY).await;
        log.admit(Limit::MaxTransports, "one more");
        let all = log.last.lock().unwrap();
        assert_eq!(all[Limit::MaxTransports as usize].len(), 1);
    }
}
