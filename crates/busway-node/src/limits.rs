//! The session limits of a service (CONTRACT section 10): `max_sessions`,
//! `max_sessions_per_client` and `new_sessions_per_client`, checked when a session starts and
//! before anything is dialled, so a refused session costs no backend connection, no mirror and
//! no bus stream.
//!
//! The counts live in the service's state ([`SessionLimits`], one per service, kept across
//! reloads) while the numbers they are held to are read from the configuration at every
//! admission: a reload that changes a limit applies to the next session, and sessions already
//! open are never closed by it (a lowered limit refuses new sessions until enough have ended).
//!
//! - `max_sessions` counts every session of the service at this node: clients of its listeners
//!   and sessions arriving over the bus alike.
//! - the per-client limits apply to the IP address of a listener's client
//!   ([`clients::ClientTable`]). Sessions arriving over the bus carry no address of their own
//!   (their client is the ingress's), and a Unix socket's clients have none, so neither is
//!   limited per client. Addresses are tracked only while a per-client limit is set, so a
//!   reload that sets one counts the sessions admitted from then on.

mod bucket;
mod clients;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use busway_config::ServiceLimits;

pub use clients::{ClientTable, Tracked, CAP};

use crate::metrics::Limit;

/// What a service's limits count.
#[derive(Debug, Default)]
pub struct SessionLimits {
    /// Sessions admitted and not yet ended, for `max_sessions`.
    open: AtomicU32,
    clients: ClientTable,
}

/// A session admitted under its service's limits; dropping it (when the session ends) counts
/// the end.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<SessionLimits>,
    /// The client address counted in the table, if it was.
    client: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.client {
            self.limits.clients.release(ip);
        }
    }
}

/// What an admission of a listener's client tells the caller besides yes or no.
#[derive(Debug)]
pub struct Admitted {
    pub admission: Admission,
    /// The client's address could not be tracked because the table is full, and this is the
    /// first such session in a second: worth a log line.
    pub table_full: bool,
}

impl SessionLimits {
    /// Admits a session that arrived over the bus: only `max_sessions` applies.
    pub fn admit_bus(self: &Arc<Self>, limits: &ServiceLimits) -> Result<Admission, Limit> {
        self.take_slot(limits.max_sessions)?;
        Ok(Admission {
            limits: self.clone(),
            client: None,
        })
    }

    /// Admits a client of one of the service's listeners, `client` being the address its
    /// accept gave (`IP:PORT`, or a `unix://` path, which has no IP to limit).
    pub fn admit_client(
        self: &Arc<Self>,
        limits: &ServiceLimits,
        client: &str,
    ) -> Result<Admitted, Limit> {
        let per_client = limits.max_sessions_per_client > 0 || limits.new_sessions_per_client > 0;
        let ip = client_ip(client).filter(|_| per_client);
        let Some(ip) = ip else {
            return Ok(Admitted {
                admission: self.admit_bus(limits)?,
                table_full: false,
            });
        };
        let tracked = self
            .clients
            .admit(ip, limits, || self.take_slot(limits.max_sessions))?;
        let (client, table_full) = match tracked {
            Tracked::Yes => (Some(ip), false),
            Tracked::No { say } => (None, say),
        };
        Ok(Admitted {
            admission: Admission {
                limits: self.clone(),
                client,
            },
            table_full,
        })
    }

    /// Counts one more open session if `max` (0 = no limit) allows it.
    fn take_slot(&self, max: u32) -> Result<(), Limit> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| Limit::MaxSessions)
    }

    /// Sessions of the service open now, as the limits count them.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }

    /// The per-client table, for tests and the admin API.
    pub fn clients(&self) -> &ClientTable {
        &self.clients
    }
}

/// The IP address in an accepted client's `IP:PORT`, with an IPv4 client of a dual-stack
/// listener (`[::ffff:192.0.2.1]:PORT`) taken as the IPv4 address it is, so it is one client
/// whichever listener it came through.
fn client_ip(client: &str) -> Option<IpAddr> {
    client
        .parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u32, per_client: u32, rate: u32) -> ServiceLimits {
        ServiceLimits {
            anonymous: false,
            max_sessions: max,
            max_sessions_per_client: per_client,
            new_sessions_per_client: rate,
        }
    }

    #[test]
    fn client_addresses() {
        assert_eq!(
            client_ip("127.0.0.2:4000"),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            client_ip("[::ffff:192.0.2.1]:9"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(client_ip("[::1]:9"), Some("::1".parse().unwrap()));
        assert_eq!(client_ip("unix:///run/x.sock"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn max_sessions_counts_clients_and_bus_sessions_together() {
        let s = Arc::new(SessionLimits::default());
        let l = limits(3, 0, 0);
        let a = s.admit_client(&l, "10.0.0.1:1").unwrap();
        let b = s.admit_bus(&l).unwrap();
        let c = s.admit_client(&l, "unix:///x").unwrap();
        assert_eq!(s.open(), 3);
        assert_eq!(s.admit_bus(&l).unwrap_err(), Limit::MaxSessions);
        assert_eq!(
            s.admit_client(&l, "10.0.0.2:1").unwrap_err(),
            Limit::MaxSessions
        );
        drop(b);
        let d = s.admit_bus(&l).unwrap();
        // A raised limit (a reload) applies to the next session.
        let more = limits(4, 0, 0);
        let e = s.admit_client(&more, "10.0.0.2:1").unwrap();
        assert_eq!(s.open(), 4);
        drop((a, c, d, e));
        assert_eq!(s.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn per_client_limits_apply_to_listener_clients_only() {
        let s = Arc::new(SessionLimits::default());
        let l = limits(0, 1, 0);
        let a = s.admit_client(&l, "10.0.0.1:1").unwrap();
        assert_eq!(
            s.admit_client(&l, "10.0.0.1:2").unwrap_err(),
            Limit::MaxSessionsPerClient
        );
        // Bus sessions and Unix clients have no address to limit.
        let bus: Vec<_> = (0..3).map(|_| s.admit_bus(&l).unwrap()).collect();
        let unix: Vec<_> = (0..3)
            .map(|_| s.admit_client(&l, "unix:///x").unwrap())
            .collect();
        assert_eq!(s.clients().len(), 1);
        drop(a);
        assert_eq!(s.clients().len(), 0);
        let _b = s.admit_client(&l, "10.0.0.1:3").unwrap();
        drop((bus, unix));
        assert_eq!(s.open(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_full_refuses_before_the_client_is_counted() {
        let s = Arc::new(SessionLimits::default());
        let l = limits(1, 5, 5);
        let _a = s.admit_bus(&l).unwrap();
        for _ in 0..10 {
            assert_eq!(
                s.admit_client(&l, "10.0.0.1:1").unwrap_err(),
                Limit::MaxSessions
            );
        }
        // The refusals took no token: the client still has its whole burst of 5.
        drop(_a);
        let l = limits(0, 5, 5);
        let kept: Vec<_> = (0..5)
            .map(|_| s.admit_client(&l, "10.0.0.1:1").unwrap())
            .collect();
        assert_eq!(
            s.admit_client(&l, "10.0.0.1:1").unwrap_err(),
            Limit::NewSessionsPerClient
        );
        drop(kept);
    }

    #[tokio::test(start_paused = true)]
    async fn without_per_client_limits_nothing_is_tracked() {
        let s = Arc::new(SessionLimits::default());
        let l = limits(0, 0, 0);
        let all: Vec<_> = (0..100)
            .map(|n| s.admit_client(&l, &format!("10.0.0.{n}:1")).unwrap())
            .collect();
        assert_eq!(s.clients().len(), 0);
        assert_eq!(s.open(), 100);
        drop(all);
        assert_eq!(s.open(), 0);
    }
}
