//! Target sets: the endpoints behind a service's configured addresses.
//!
//! Each configured address (a literal, a DNS name, a Unix path) expands to endpoints; a DNS name
//! to one endpoint per A/AAAA record, re-resolved when its TTL runs out. Endpoints keep their
//! identity (and so their health and session counts) across re-resolutions that still list them.
//!
//! Health follows the contract: an endpoint whose connect fails is *ejected* for a backoff that
//! starts at 1 s and doubles up to 30 s, and only a background connect probe brings it back —
//! never a client's session, which would pay for the probe with its own latency.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use busway_config::{Address, Balance, HealthCheck};

use crate::dial::dial;
use crate::dns::Resolver;

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

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Health {
    ejected_until: Option<Instant>,
    backoff: Duration,
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
    sessions: AtomicUsize,
    health: Mutex<Health>,
}

impl Endpoint {
    pub fn new(addr: EndpointAddr) -> Arc<Endpoint> {
        Self::ranked(addr, 0, 0)
    }

    /// An endpoint from an SRV record.
    pub fn ranked(addr: EndpointAddr, priority: u16, weight: u16) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            addr,
            priority,
            weight,
            sessions: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
        })
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

    /// Counts a session for `least-sessions` and the admin API until the guard drops.
    pub fn session_guard(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self.clone())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ejects the endpoint after a failed connect and starts the probe that will bring it back.
    pub fn eject(self: &Arc<Self>, reason: &str, connect_timeout: Duration) {
        let start_probe = {
            let mut h = self.health();
            h.backoff = if h.backoff.is_zero() {
                FIRST_BACKOFF
            } else {
                (h.backoff * 2).min(MAX_BACKOFF)
            };
            h.ejected_until = Some(Instant::now() + h.backoff);
            h.reason = reason.to_string();
            !std::mem::replace(&mut h.probing, true)
        };
        tracing::warn!(endpoint = %self.addr, reason, "target ejected");
        if start_probe {
            let ep = self.clone();
            tokio::spawn(async move { ep.probe(connect_timeout).await });
        }
    }

    /// Waits out the backoff, then connect-probes until one probe succeeds.
    async fn probe(self: Arc<Self>, connect_timeout: Duration) {
        loop {
            let until = self.health().ejected_until;
            let Some(until) = until else { break };
            tokio::time::sleep_until(until.into()).await;
            match dial(&self.addr, connect_timeout).await {
                Ok(c) => {
                    let _ = c.shutdown_both();
                    let mut h = self.health();
                    *h = Health::default();
                    drop(h);
                    tracing::info!(endpoint = %self.addr, "target back after a successful probe");
                    break;
                }
                Err(e) => {
                    let mut h = self.health();
                    h.backoff = (h.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                    h.ejected_until = Some(Instant::now() + h.backoff);
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

#[derive(Debug, Default)]
struct Resolved {
    endpoints: Vec<Arc<Endpoint>>,
    valid_until: Option<Instant>,
    error: Option<String>,
    /// Lookups failed in a row: the retry waits 1 s, doubling up to 30 s.
    failures: u32,
}

#[derive(Debug)]
struct Entry {
    address: Address,
    resolved: Mutex<Resolved>,
}

/// The living set of endpoints behind a list of addresses.
pub struct TargetSet {
    entries: Vec<Entry>,
    rr: AtomicUsize,
    /// Lookups that failed (the last good answer was kept).
    lookup_failures: AtomicUsize,
    resolver: Resolver,
}

impl fmt::Debug for TargetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetSet")
            .field("entries", &self.entries)
            .finish()
    }
}

impl TargetSet {
    /// Unix paths and IP literals are endpoints at once; names resolve on the first refresh.
    pub fn new(addresses: &[Address], resolver: Resolver) -> Arc<TargetSet> {
        let entries = addresses
            .iter()
            .map(|a| {
                let mut r = Resolved::default();
                if let Some(ep) = static_endpoint(a) {
                    r.endpoints.push(Endpoint::new(ep));
                    r.valid_until = Some(Instant::now() + Duration::from_secs(1 << 30));
                }
                Entry {
                    address: a.clone(),
                    resolved: Mutex::new(r),
                }
            })
            .collect();
        Arc::new(TargetSet {
            entries,
            rr: AtomicUsize::new(0),
            lookup_failures: AtomicUsize::new(0),
            resolver,
        })
    }

    /// The configured addresses, as written.
    pub fn addresses(&self) -> Vec<Address> {
        self.entries.iter().map(|e| e.address.clone()).collect()
    }

    /// True when some entry's answer has expired (a cheap check before [`Self::refresh`]).
    pub fn needs_refresh(&self) -> bool {
        let now = Instant::now();
        self.entries
            .iter()
            .any(|e| lock(&e.resolved).valid_until.is_none_or(|t| t <= now))
    }

    /// Re-resolves every entry whose answer has expired. A failed lookup keeps the last good set
    /// (and records the error for `/readyz`).
    pub async fn refresh(&self) {
        let now = Instant::now();
        for e in &self.entries {
            let expired = lock(&e.resolved).valid_until.is_none_or(|t| t <= now);
            if !expired {
                continue;
            }
            let looked_up = match &e.address {
                Address::Tcp { host, port } => self
                    .resolver
                    .lookup(host, *port)
                    .await
                    .map(|(a, t)| (a.into_iter().map(|a| (a, 0, 0)).collect::<Vec<_>>(), t)),
                Address::Srv(name) => self.resolver.lookup_srv(name).await.map(|(v, t)| {
                    let v = v.into_iter().map(|s| (s.addr, s.priority, s.weight));
                    (v.collect(), t)
                }),
                _ => continue,
            };
            match looked_up {
                Ok((found, until)) => {
                    let mut r = lock(&e.resolved);
                    let old = std::mem::take(&mut r.endpoints);
                    r.endpoints = found
                        .into_iter()
                        .map(|(a, priority, weight)| {
                            let ep = EndpointAddr::Tcp(a);
                            old.iter()
                                .find(|o| {
                                    o.addr == ep && o.priority == priority && o.weight == weight
                                })
                                .cloned()
                                .unwrap_or_else(|| Endpoint::ranked(ep, priority, weight))
                        })
                        .collect();
                    r.valid_until = Some(until);
                    r.error = None;
                    r.failures = 0;
                }
                Err(err) => {
                    self.lookup_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(address = %e.address, %err, "lookup failed; keeping the last good targets");
                    let mut r = lock(&e.resolved);
                    let retry = (FIRST_BACKOFF * 2u32.saturating_pow(r.failures)).min(MAX_BACKOFF);
                    r.failures = r.failures.saturating_add(1);
                    r.valid_until = Some(now + retry);
                    r.error = Some(err);
                }
            }
        }
    }

    /// How many lookups failed so far.
    pub fn lookup_failures(&self) -> usize {
        self.lookup_failures.load(Ordering::Relaxed)
    }

    /// Every endpoint now in the set.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.entries
            .iter()
            .flat_map(|e| lock(&e.resolved).endpoints.clone())
            .collect()
    }

    /// Why an entry has no endpoint (for `/readyz`).
    pub fn problems(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| {
                let r = lock(&e.resolved);
                if r.endpoints.is_empty() {
                    Some(
                        r.error
                            .clone()
                            .unwrap_or_else(|| format!("{} is not resolved yet", e.address)),
                    )
                } else {
                    None
                }
            })
            .collect()
    }

    /// Chooses one endpoint among those `usable` accepts and not in `tried`.
    pub fn pick(
        &self,
        balance: Balance,
        tried: &[Arc<Endpoint>],
        usable: impl Fn(&Endpoint) -> bool,
    ) -> Option<Arc<Endpoint>> {
        let mut candidates: Vec<Arc<Endpoint>> = self
            .endpoints()
            .into_iter()
            .filter(|e| usable(e) && !tried.iter().any(|t| Arc::ptr_eq(t, e)))
            .collect();
        // SRV: only the most preferred priority that still has a usable endpoint.
        let best = candidates.iter().map(|c| c.priority).min()?;
        candidates.retain(|c| c.priority == best);
        let turn = self.rr.fetch_add(1, Ordering::Relaxed);
        let total: u64 = candidates.iter().map(|c| u64::from(c.weight)).sum();
        if total > 0 {
            // SRV weights: each endpoint gets its share of the turns, in order.
            let mut x = turn as u64 % total;
            for c in &candidates {
                if x < u64::from(c.weight) {
                    return Some(c.clone());
                }
                x -= u64::from(c.weight);
            }
        }
        let i = match balance {
            Balance::RoundRobin => turn % candidates.len(),
            Balance::Random => rand::random_range(0..candidates.len()),
            Balance::LeastSessions => {
                let least = candidates.iter().map(|c| c.sessions()).min().unwrap_or(0);
                let tied: Vec<usize> = (0..candidates.len())
                    .filter(|&i| candidates[i].sessions() == least)
                    .collect();
                tied[turn % tied.len()]
            }
        };
        Some(candidates[i].clone())
    }

    /// Runs the optional active check: a TCP connect to every endpoint each interval; a failure
    /// ejects the endpoint like a failed session connect would. Ends when the set is dropped.
    pub fn spawn_health_checks(self: &Arc<Self>, hc: HealthCheck, connect_timeout: Duration) {
        let weak: Weak<TargetSet> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hc.interval);
            loop {
                tick.tick().await;
                let Some(set) = weak.upgrade() else { break };
                set.refresh().await;
                for ep in set.endpoints().into_iter().filter(|e| e.is_up()) {
                    if let Err(e) = dial(&ep.addr, hc.timeout).await {
                        ep.eject(&format!("health check: {e}"), connect_timeout);
                    }
                }
            }
        });
    }
}

fn static_endpoint(a: &Address) -> Option<EndpointAddr> {
    match a {
        Address::Unix(p) => Some(EndpointAddr::Unix(p.clone())),
        Address::Tcp { host, port } => host
            .parse()
            .ok()
            .map(|ip| EndpointAddr::Tcp(SocketAddr::new(ip, *port))),
        _ => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use busway_config::DnsConfig;

    fn set(addrs: &[&str]) -> Arc<TargetSet> {
        let addrs: Vec<Address> = addrs
            .iter()
            .map(|a| {
                let (h, p) = a.rsplit_once(':').unwrap();
                Address::Tcp {
                    host: h.into(),
                    port: p.parse().unwrap(),
                }
            })
            .collect();
        TargetSet::new(&addrs, Resolver::new(&DnsConfig::default()))
    }

    #[tokio::test]
    async fn round_robin_visits_every_endpoint_in_turn() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let picks: Vec<String> = (0..6)
            .map(|_| {
                s.pick(Balance::RoundRobin, &[], |_| true)
                    .unwrap()
                    .addr
                    .to_string()
            })
            .collect();
        assert_eq!(picks[0..3], picks[3..6]);
        let mut first: Vec<_> = picks[0..3].to_vec();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 3);
    }

    #[tokio::test]
    async fn least_sessions_prefers_the_idle_endpoint() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        let a = s.pick(Balance::LeastSessions, &[], |_| true).unwrap();
        let _g = a.session_guard();
        for _ in 0..4 {
            let b = s.pick(Balance::LeastSessions, &[], |_| true).unwrap();
            assert!(!Arc::ptr_eq(&a, &b));
        }
    }

    #[tokio::test]
    async fn ejected_endpoints_are_skipped_and_tried_ones_excluded() {
        let s = set(&["127.0.0.1:1", "127.0.0.1:2"]);
        let a = s.pick(Balance::RoundRobin, &[], |_| true).unwrap();
        a.eject("test", Duration::from_millis(50));
        assert!(!a.is_up());
        for _ in 0..4 {
            let b = s.pick(Balance::RoundRobin, &[], |e| e.is_up()).unwrap();
            assert!(!Arc::ptr_eq(&a, &b));
        }
        let b = s.pick(Balance::Random, &[], |e| e.is_up()).unwrap();
        assert!(s.pick(Balance::Random, &[b], |e| e.is_up()).is_none());
    }

    #[tokio::test]
    async fn srv_priority_and_weight_decide_the_pick() {
        let s = set(&["127.0.0.1:9"]);
        let mk = |port: u16, p: u16, w: u16| {
            Endpoint::ranked(EndpointAddr::Tcp(([127, 0, 0, 1], port).into()), p, w)
        };
        let eps = [mk(1, 10, 3), mk(2, 10, 1), mk(3, 20, 5)];
        let pick = |usable: &dyn Fn(&Endpoint) -> bool| {
            let mut counts = [0; 3];
            for _ in 0..400 {
                let e = pick_among(&s, &eps, usable).unwrap();
                counts[eps.iter().position(|x| Arc::ptr_eq(x, &e)).unwrap()] += 1;
            }
            counts
        };
        // Priority 10 only, spread 3:1 by weight.
        assert_eq!(pick(&|_| true), [300, 100, 0]);
        // With priority 10 gone, priority 20 takes everything.
        assert_eq!(pick(&|e| e.priority == 20), [0, 0, 400]);
    }

    /// `pick` over a fixed list, for tests.
    fn pick_among(
        s: &TargetSet,
        eps: &[Arc<Endpoint>],
        usable: &dyn Fn(&Endpoint) -> bool,
    ) -> Option<Arc<Endpoint>> {
        let entry = &s.entries[0];
        lock(&entry.resolved).endpoints = eps.to_vec();
        s.pick(Balance::RoundRobin, &[], usable)
    }

    #[tokio::test]
    async fn failed_lookups_are_retried_with_backoff() {
        let s = set(&["name.invalid:80"]);
        let mut waits = Vec::new();
        for _ in 0..3 {
            lock(&s.entries[0].resolved).valid_until = None;
            let before = Instant::now();
            s.refresh().await;
            let until = lock(&s.entries[0].resolved).valid_until.unwrap();
            waits.push((until - before).as_millis() / 100);
        }
        // 1 s, 2 s, 4 s (in tenths, allowing for the lookup's own time).
        assert_eq!(
            waits.iter().map(|w| w / 10).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_problem_not_a_panic() {
        let s = set(&["name.invalid:80"]);
        s.refresh().await;
        assert!(s.endpoints().is_empty());
        let p = s.problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("name.invalid"), "{p:?}");
    }
}
