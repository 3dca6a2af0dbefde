//! One connectable endpoint of a target set, and its health.
//!
//! Health follows the contract: an endpoint whose connect fails is *ejected* for a backoff that
//! starts at 1 s and doubles up to 30 s (jittered upwards, see [`Backoff`]), and only a
//! background connect probe brings it back — never a client's session, which would pay for the
//! probe with its own latency.
//!
//! An endpoint that its DNS name stopped listing, or whose target set was replaced, is
//! *retired*: its probe ends at once and it is never probed or health-checked again, so a
//! vanished address costs nothing. Sessions still using it are not touched.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::dial::dial;

/// Where one endpoint lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddr::Tcp(a) => write!(f, "tcp://{a}"),
            EndpointAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// The contract's ejection backoff (and the DNS retry's): 1 s doubling up to 30 s.
pub(crate) fn contract_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

#[derive(Debug)]
struct Health {
    ejected_until: Option<Instant>,
    backoff: Backoff,
    probing: bool,
    reason: String,
}

/// One connectable endpoint and its health.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: EndpointAddr,
    /// From an SRV record: lower is preferred while any such endpoint is usable.
    pub priority: u16,
    /// From an SRV record: share of the sessions within its priority (0 for non-SRV targets).
    pub weight: u16,
    /// The node a session through this endpoint is for (`namespace/name`), when discovery
    /// found it: the dialled address may be a relay's, which carries the session on to it.
    pub to: Option<Arc<str>>,
    sessions: AtomicUsize,
    health: Mutex<Health>,
    /// A watch rather than a flag, so a probe asleep in its backoff wakes up when retired.
    retired: watch::Sender<bool>,
    /// `addr` printed once: every session through the endpoint lists it.
    label: std::sync::Arc<str>,
}

impl Endpoint {
    pub fn new(addr: EndpointAddr) -> Arc<Endpoint> {
        Self::ranked(addr, 0, 0)
    }

    /// An endpoint from an SRV record.
    pub fn ranked(addr: EndpointAddr, priority: u16, weight: u16) -> Arc<Endpoint> {
        Self::build(addr, priority, weight, None)
    }

    /// An endpoint discovery found for node `to`, reached by dialling `addr` (its own bus URL,
    /// a gateway, or a relay).
    pub fn routed(addr: EndpointAddr, to: Arc<str>) -> Arc<Endpoint> {
        Self::build(addr, 0, 0, Some(to))
    }

    fn build(
        addr: EndpointAddr,
        priority: u16,
        weight: u16,
        to: Option<Arc<str>>,
    ) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            label: addr.to_string().into(),
            addr,
            priority,
            weight,
            to,
            sessions: AtomicUsize::new(0),
            health: Mutex::new(Health {
                ejected_until: None,
                backoff: contract_backoff(),
                probing: false,
                reason: String::new(),
            }),
            retired: watch::Sender::new(false),
        })
    }

    /// The endpoint's address as text, shared: sessions list it without a copy each.
    pub fn label(&self) -> Arc<str> {
        self.label.clone()
    }

    /// False while ejected.
    pub fn is_up(&self) -> bool {
        self.health().ejected_until.is_none()
    }

    /// Why it is down (empty when up).
    pub fn down_reason(&self) -> String {
        self.health().reason.clone()
    }

    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// True once its target set no longer lists it (see the module doc): whatever the node
    /// keeps for it (a transport pool) can go.
    pub fn is_retired(&self) -> bool {
        *self.retired.borrow()
    }

    /// True while a connect probe is running for it.
    pub fn is_probing(&self) -> bool {
        self.health().probing
    }

    /// Takes it out of service for good and stops its probe.
    pub(crate) fn retire(&self) {
        if !self.retired.send_replace(true) {
            tracing::debug!(endpoint = %self.addr, "target retired");
        }
    }

    /// Counts a session for `least-sessions` and the admin API until the guard drops.
    pub fn session_guard(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self.clone())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ejects the endpoint after a failed connect and starts the probe that will bring it back
    /// (none for a retired endpoint: nothing will use it again).
    pub fn eject(self: &Arc<Self>, reason: &str, connect_timeout: Duration) {
        let start_probe = {
            let mut h = self.health();
            let wait = h.backoff.next_delay();
            h.ejected_until = Some(Instant::now() + wait);
            h.reason = reason.to_string();
            let start = !h.probing && !self.is_retired();
            h.probing |= start;
            start
        };
        tracing::warn!(endpoint = %self.addr, reason, "target ejected");
        if start_probe {
            let ep = self.clone();
            tokio::spawn(async move { ep.probe(connect_timeout).await });
        }
    }

    /// Waits out the backoff, then connect-probes until one probe succeeds or the endpoint is
    /// retired.
    async fn probe(self: Arc<Self>, connect_timeout: Duration) {
        let mut retired = self.retired.subscribe();
        loop {
            let Some(until) = self.health().ejected_until else {
                break;
            };
            let attempt = async {
                tokio::time::sleep_until(until.into()).await;
                dial(&self.addr, connect_timeout).await
            };
            let dialled = tokio::select! {
                d = attempt => d,
                _ = retired.wait_for(|r| *r) => break,
            };
            let mut h = self.health();
            match dialled {
                Ok(c) => {
                    let _ = c.shutdown_both();
                    h.ejected_until = None;
                    h.backoff.reset();
                    h.reason.clear();
                    drop(h);
                    tracing::info!(endpoint = %self.addr, "target back after a successful probe");
                    break;
                }
                Err(e) => {
                    let wait = h.backoff.next_delay();
                    h.ejected_until = Some(Instant::now() + wait);
                    h.reason = e.to_string();
                }
            }
        }
        self.health().probing = false;
    }
}

/// Decrements the endpoint's session count on drop.
#[derive(Debug)]
pub struct SessionGuard(Arc<Endpoint>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Arc<Endpoint> {
        // Port 1 on loopback: nothing listens there, so a probe is refused at once.
        Endpoint::new(EndpointAddr::Tcp(([127, 0, 0, 1], 1).into()))
    }

    fn alive_tasks() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    /// Polls `f` every 10 ms for up to `limit`.
    async fn eventually(limit: Duration, f: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while !f() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        f()
    }

    #[tokio::test]
    async fn an_ejection_waits_at_least_a_second_and_doubles_while_probes_fail() {
        let ep = refused();
        let before = Instant::now();
        ep.eject("test", Duration::from_millis(200));
        let first = ep.health().ejected_until.unwrap_or(before) - before;
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1260));
        assert!(ep.is_probing() && !ep.is_up());
        // The probe fails after the first wait and doubles the backoff: 2 s to 2.5 s.
        assert!(
            eventually(Duration::from_secs(3), || ep
                .down_reason()
                .contains("refused"))
            .await
        );
        let failed_at = Instant::now();
        let second = ep.health().ejected_until.unwrap_or(failed_at) - failed_at;
        assert!(
            second >= Duration::from_millis(1900) && second <= Duration::from_millis(2500),
            "{second:?}"
        );
        ep.retire();
    }

    #[tokio::test]
    async fn retiring_ends_the_probe_at_once_and_no_probe_starts_after() {
        let base = alive_tasks();
        let ep = refused();
        ep.eject("test", Duration::from_millis(200));
        assert_eq!(alive_tasks(), base + 1, "the probe task");
        ep.retire();
        assert!(ep.is_retired());
        // Woken in its 1 s backoff sleep, not after it.
        assert!(eventually(Duration::from_millis(500), || alive_tasks() == base).await);
        assert!(!ep.is_probing());
        // A session that still held it and failed to connect starts no new probe.
        ep.eject("late failure", Duration::from_millis(200));
        assert!(!ep.is_probing());
        assert_eq!(alive_tasks(), base);
    }
}
