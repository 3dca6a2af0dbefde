//! Target sets: the endpoints behind a service's configured addresses.
//!
//! Each configured address (a literal, a DNS name, a Unix path) expands to endpoints; a DNS name
//! to one endpoint per A/AAAA record, re-resolved when its TTL runs out. Endpoints keep their
//! identity (and so their health and session counts) across re-resolutions that still list them;
//! an endpoint that an answer no longer lists is retired (its probe stops), and
//! [`TargetSet::changes`] tells whoever keeps something per endpoint that the list changed.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use busway_config::{Address, Balance, HealthCheck};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::dial::dial;
use crate::dns::Resolver;
use crate::endpoint::contract_backoff;
pub use crate::endpoint::{Endpoint, EndpointAddr, SessionGuard};

/// A DNS answer: every address with its SRV priority and weight (0 for A/AAAA records), and
/// until when it holds.
type Answer = (Vec<(SocketAddr, u16, u16)>, Instant);

/// An endpoint as an answer lists it: address, SRV priority and weight, and the discovered
/// node it is for.
type Found = (EndpointAddr, u16, u16, Option<Arc<str>>);

#[derive(Debug)]
struct Resolved {
    endpoints: Vec<Arc<Endpoint>>,
    valid_until: Option<Instant>,
    error: Option<String>,
    /// When a failed lookup is retried: 1 s doubling up to 30 s, jittered so that the sets of
    /// every service do not all ask a recovering DNS server at once; reset by a good answer.
    retry: Backoff,
}

impl Resolved {
    fn new() -> Resolved {
        Resolved {
            endpoints: Vec::new(),
            valid_until: None,
            error: None,
            retry: contract_backoff(),
        }
    }
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
    /// Replaced when the node's `[dns]` changes; `generation` counts the replacements, so an
    /// answer from the old resolver that arrives after one is dropped.
    resolver: Mutex<Resolver>,
    generation: AtomicU64,
    /// Bumped whenever the endpoint list changes.
    changes: watch::Sender<u64>,
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
                let mut r = Resolved::new();
                if let Some(ep) = static_endpoint(a) {
                    r.endpoints.push(Endpoint::new(ep));
                    r.valid_until = Some(Instant::now() + Duration::from_secs(1 << 30));
                }
                // Discovery and mDNS set these (`set_discovered`, `set_mdns`); DNS never
                // looks them up.
                if matches!(a, Address::Label(_) | Address::Mdns(_)) {
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
            resolver: Mutex::new(resolver),
            generation: AtomicU64::new(0),
            changes: watch::Sender::new(0),
        })
    }

    /// The configured addresses, as written.
    pub fn addresses(&self) -> Vec<Address> {
        self.entries.iter().map(|e| e.address.clone()).collect()
    }

    /// A counter bumped whenever the endpoint list changes (an answer added or dropped an
    /// endpoint), so that whoever keeps something per endpoint, like the node's transport pools
    /// of peers, can stop it for the endpoints that vanished ([`Endpoint::is_retired`]) and start
    /// it for new ones. A new receiver has seen the current value: its `changed()` waits for the
    /// next change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// True when some entry's answer has expired (a cheap check before [`Self::refresh`]).
    pub fn needs_refresh(&self) -> bool {
        let now = Instant::now();
        self.entries
            .iter()
            .any(|e| lock(&e.resolved).valid_until.is_none_or(|t| t <= now))
    }

    /// Resolves through `resolver` from now on, starting now: every name's answer counts as
    /// expired, so the next [`Self::refresh`] asks the new servers. Endpoints the new answers
    /// still list keep their health and session counts.
    pub fn set_resolver(&self, resolver: Resolver) {
        {
            let mut r = lock(&self.resolver);
            *r = resolver;
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        let now = Instant::now();
        for e in self.entries.iter().filter(|e| is_name(&e.address)) {
            let mut r = lock(&e.resolved);
            r.valid_until = Some(now);
            r.retry.reset();
        }
    }

    /// Re-resolves every entry whose answer has expired. A failed lookup keeps the last good set
    /// (and records the error for `/readyz`).
    pub async fn refresh(&self) {
        let (generation, resolver) = {
            let r = lock(&self.resolver);
            (self.generation.load(Ordering::Relaxed), r.clone())
        };
        let now = Instant::now();
        for e in &self.entries {
            let expired = lock(&e.resolved).valid_until.is_none_or(|t| t <= now);
            if !expired {
                continue;
            }
            let looked_up = match &e.address {
                Address::Tcp { host, port } => resolver
                    .lookup(host, *port)
                    .await
                    .map(|(a, t)| (a.into_iter().map(|a| (a, 0, 0)).collect(), t)),
                Address::Srv(name) => resolver.lookup_srv(name).await.map(|(v, t)| {
                    let v = v.into_iter().map(|s| (s.addr, s.priority, s.weight));
                    (v.collect(), t)
                }),
                _ => continue,
            };
            self.apply(e, looked_up, generation);
        }
    }

    /// Takes one entry's lookup result: a good answer replaces its endpoints (keeping those it
    /// still lists, retiring the others), a failure keeps them and schedules the retry. A
    /// result from a resolver replaced meanwhile is dropped (checked under the entry's lock,
    /// which [`Self::set_resolver`] takes after the replacement to expire the entry).
    fn apply(&self, e: &Entry, looked_up: Result<Answer, String>, generation: u64) {
        let mut r = lock(&e.resolved);
        if self.generation.load(Ordering::Relaxed) != generation {
            return;
        }
        match looked_up {
            Ok((found, until)) => {
                let found = found
                    .into_iter()
                    .map(|(a, priority, weight)| (EndpointAddr::Tcp(a), priority, weight, None));
                r.valid_until = Some(until);
                r.error = None;
                r.retry.reset();
                self.replace(e, r, found);
            }
            Err(err) => {
                self.lookup_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(address = %e.address, %err, "lookup failed; keeping the last good targets");
                // From now, not from before the lookup: a resolver that took its time must not
                // eat into the wait.
                let retry = r.retry.next_delay();
                r.valid_until = Some(Instant::now() + retry);
                r.error = Some(err);
            }
        }
    }

    /// Replaces an entry's endpoints with `found`, keeping (with their health and session
    /// counts) those it still lists and retiring the others; says so on [`Self::changes`].
    fn replace(
        &self,
        e: &Entry,
        mut r: std::sync::MutexGuard<'_, Resolved>,
        found: impl Iterator<Item = Found>,
    ) {
        let old = std::mem::take(&mut r.endpoints);
        r.endpoints = found
            .map(|(ep, priority, weight, to)| {
                old.iter()
                    .find(|o| {
                        o.addr == ep && o.priority == priority && o.weight == weight && o.to == to
                    })
                    .cloned()
                    .unwrap_or_else(|| match to {
                        Some(to) => Endpoint::routed(ep, to),
                        None => Endpoint::ranked(ep, priority, weight),
                    })
            })
            .collect();
        let kept = |o: &Arc<Endpoint>| r.endpoints.iter().any(|n| Arc::ptr_eq(n, o));
        let mut changed = r.endpoints.len() != old.len();
        for gone in old.iter().filter(|o| !kept(o)) {
            tracing::info!(address = %e.address, endpoint = %gone.addr, "target no longer listed");
            gone.retire();
            changed = true;
        }
        drop(r);
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The `label:` entries of the set, each with its selector, for whoever follows discovery.
    pub fn selectors(&self) -> Vec<std::collections::BTreeMap<String, String>> {
        self.entries
            .iter()
            .filter_map(|e| match &e.address {
                Address::Label(sel) => Some(sel.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sets the endpoints of every `label:` entry: `found(selector)` lists, for each discovered
    /// node it selects, the bus endpoint that reaches it and the node's `namespace/name`.
    /// Discovery calls it whenever its view changes; an endpoint listed before and now keeps its
    /// health and sessions, one no longer listed is retired (sessions on it stay where they
    /// are).
    pub fn set_discovered(
        &self,
        found: impl Fn(&std::collections::BTreeMap<String, String>) -> Vec<(EndpointAddr, Arc<str>)>,
    ) {
        self.set_found(|a| match a {
            Address::Label(sel) => Some(
                found(sel)
                    .into_iter()
                    .map(|(ep, to)| (ep, 0, 0, Some(to)))
                    .collect(),
            ),
            _ => None,
        });
    }

    /// The service types of the set's `mdns:` entries, for whoever browses multicast DNS.
    pub fn mdns_types(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match &e.address {
                Address::Mdns(ty) => Some(ty.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sets the endpoints of every `mdns:` entry: `found(service_type)` lists the bus
    /// endpoints of the instances the browse has resolved now. They are plain bus peers (the
    /// node dialled is the node meant, no relay in between), kept and retired as
    /// [`Self::set_discovered`] does.
    pub fn set_mdns(&self, found: impl Fn(&str) -> Vec<EndpointAddr>) {
        self.set_found(|a| match a {
            Address::Mdns(ty) => Some(found(ty).into_iter().map(|ep| (ep, 0, 0, None)).collect()),
            _ => None,
        });
    }

    /// Replaces the endpoints of every entry `found` answers for, unless they are the same as
    /// before (a follower calls this on every change of its view, most of which change nothing
    /// here).
    fn set_found(&self, found: impl Fn(&Address) -> Option<Vec<Found>>) {
        for e in &self.entries {
            let Some(eps) = found(&e.address) else {
                continue;
            };
            let r = lock(&e.resolved);
            if r.endpoints.len() == eps.len()
                && r.endpoints.iter().zip(&eps).all(|(a, (addr, p, w, to))| {
                    &a.addr == addr && a.priority == *p && a.weight == *w && &a.to == to
                })
            {
                continue;
            }
            self.replace(e, r, eps.into_iter());
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

    /// The host name `ep` was found under, as its address is written: `HOST` of a
    /// `tcp://HOST:PORT` (an IP literal included), `NAME` of an `srv://_service._proto.NAME`;
    /// `None` for a Unix path or an endpoint this set does not hold. A TLS dial checks the
    /// peer's certificate against it, which a resolved address alone could not give.
    pub fn host_of(&self, ep: &EndpointAddr) -> Option<String> {
        self.entries.iter().find_map(|e| {
            if !lock(&e.resolved).endpoints.iter().any(|x| &x.addr == ep) {
                return None;
            }
            match &e.address {
                Address::Tcp { host, .. } => Some(host.clone()),
                Address::Srv(name) => Some(srv_domain(name).to_string()),
                _ => None,
            }
        })
    }

    /// Why an entry has no endpoint (for `/readyz`).
    pub fn problems(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| {
                let r = lock(&e.resolved);
                if r.endpoints.is_empty() {
                    Some(r.error.clone().unwrap_or_else(|| match &e.address {
                        Address::Label(_) => format!("{} selects no discovered node", e.address),
                        Address::Mdns(_) => format!("{} has found no bus peer", e.address),
                        _ => format!("{} is not resolved yet", e.address),
                    }))
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
                // Lazy: an endpoint retired by a refresh meanwhile is skipped.
                let live = set.endpoints().into_iter();
                for ep in live.filter(|e| e.is_up() && !e.is_retired()) {
                    if let Err(e) = dial(&ep.addr, hc.timeout).await {
                        ep.eject(&format!("health check: {e}"), connect_timeout);
                    }
                }
            }
        });
    }
}

/// A replaced or removed set's endpoints are used by no new session: their probes stop too.
impl Drop for TargetSet {
    fn drop(&mut self) {
        for e in &self.entries {
            for ep in &lock(&e.resolved).endpoints {
                ep.retire();
            }
        }
    }
}

/// Whether the address is looked up in DNS (a host name or an SRV name).
fn is_name(a: &Address) -> bool {
    match a {
        Address::Srv(_) => true,
        Address::Tcp { .. } => static_endpoint(a).is_none(),
        _ => false,
    }
}

/// `NAME` of `_service._proto.NAME`: the domain an SRV record set belongs to.
fn srv_domain(name: &str) -> &str {
    let mut rest = name;
    for _ in 0..2 {
        match rest.split_once('.') {
            Some((label, tail)) if label.starts_with('_') => rest = tail,
            _ => break,
        }
    }
    rest
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

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn host_of_gives_the_name_an_endpoint_was_configured_under() {
        let set = TargetSet::new(
            &[
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 7001,
                },
                Address::Unix("/run/b.sock".into()),
            ],
            Resolver::new(&DnsConfig::default()),
        );
        let tcp = EndpointAddr::Tcp(([127, 0, 0, 1], 7001).into());
        assert_eq!(set.host_of(&tcp).as_deref(), Some("127.0.0.1"));
        assert_eq!(set.host_of(&EndpointAddr::Unix("/run/b.sock".into())), None);
        assert_eq!(
            set.host_of(&EndpointAddr::Tcp(([127, 0, 0, 1], 7002).into())),
            None
        );
        assert_eq!(srv_domain("_bus._tcp.example.org"), "example.org");
        assert_eq!(srv_domain("example.org"), "example.org");
    }

    #[test]
    fn discovered_endpoints_keep_their_identity_and_retire_when_gone() {
        let sel: std::collections::BTreeMap<String, String> =
            [("app".to_string(), "chat".to_string())].into();
        let set = TargetSet::new(
            &[Address::Label(sel.clone())],
            Resolver::new(&DnsConfig::default()),
        );
        assert!(!set.needs_refresh(), "DNS never looks a label up");
        assert_eq!(set.selectors(), vec![sel.clone()]);
        assert!(set.endpoints().is_empty());
        assert!(set.problems()[0].contains("selects no discovered node"));
        let a: (EndpointAddr, Arc<str>) = (
            EndpointAddr::Tcp(([127, 0, 0, 1], 7001).into()),
            "prod/a".into(),
        );
        let b: (EndpointAddr, Arc<str>) = (
            EndpointAddr::Tcp(([127, 0, 0, 2], 7001).into()),
            "prod/b".into(),
        );
        let mut changes = set.changes();
        set.set_discovered(|s| {
            assert_eq!(s, &sel);
            vec![a.clone(), b.clone()]
        });
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let first = set.endpoints();
        assert_eq!(first.len(), 2);
        assert_eq!(first[1].to.as_deref(), Some("prod/b"));
        // The same view again changes nothing.
        set.set_discovered(|_| vec![a.clone(), b.clone()]);
        assert!(!changes.has_changed().unwrap());
        // b leaves: a is the same endpoint as before, b is retired.
        set.set_discovered(|_| vec![a.clone()]);
        assert!(changes.has_changed().unwrap());
        let now = set.endpoints();
        assert!(Arc::ptr_eq(&now[0], &first[0]));
        assert!(first[1].is_retired());
        // Two nodes behind one relay are two endpoints with the same address.
        let via = (a.0.clone(), Arc::<str>::from("edge/c"));
        set.set_discovered(|_| vec![a.clone(), via.clone()]);
        let both = set.endpoints();
        assert_eq!(both.len(), 2);
        assert!(Arc::ptr_eq(&both[0], &first[0]), "a kept its identity");
        assert_eq!(both[1].to.as_deref(), Some("edge/c"));
    }

    #[test]
    fn mdns_entries_take_what_the_browse_resolved() {
        let set = TargetSet::new(
            &[
                Address::Mdns("_busway._tcp.local".into()),
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 7001,
                },
            ],
            Resolver::new(&DnsConfig::default()),
        );
        assert!(!set.needs_refresh(), "DNS never looks an mdns: entry up");
        assert_eq!(set.mdns_types(), vec!["_busway._tcp.local".to_string()]);
        assert!(set.problems()[0].contains("has found no bus peer"));
        let m1 = EndpointAddr::Tcp(([198, 18, 0, 11], 7100).into());
        let m2 = EndpointAddr::Tcp(([198, 18, 0, 12], 7100).into());
        let mut changes = set.changes();
        changes.mark_unchanged();
        set.set_mdns(|ty| {
            assert_eq!(ty, "_busway._tcp.local");
            vec![m1.clone(), m2.clone()]
        });
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let first = set.endpoints();
        assert_eq!(first.len(), 3, "two found and the literal");
        assert!(first.iter().all(|e| e.to.is_none()), "plain bus peers");
        // Label followers leave mdns: entries alone, and the same answer changes nothing.
        set.set_discovered(|_| unreachable!("no label: entry"));
        set.set_mdns(|_| vec![m1.clone(), m2.clone()]);
        assert!(!changes.has_changed().unwrap());
        // m2 goes: m1 keeps its identity, m2 is retired, the literal stays.
        set.set_mdns(|_| vec![m1.clone()]);
        assert!(changes.has_changed().unwrap());
        let now = set.endpoints();
        assert_eq!(now.len(), 2);
        assert!(Arc::ptr_eq(&now[0], &first[0]));
        assert!(first[1].is_retired() && !first[2].is_retired());
    }

    /// A set of `HOST:PORT` addresses, resolving through `dns`.
    fn set_via(addrs: &[&str], dns: SocketAddr) -> Arc<TargetSet> {
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
        let cfg = DnsConfig {
            servers: vec![dns],
            min_ttl: S,
        };
        TargetSet::new(&addrs, Resolver::new(&cfg))
    }

    /// A set of IP literals: no lookup ever happens, so the resolver's server is a placeholder.
    fn set(addrs: &[&str]) -> Arc<TargetSet> {
        set_via(addrs, ([127, 0, 0, 1], 9).into())
    }

    /// A DNS server on a loopback port that answers every query at once with NXDOMAIN: a name
    /// fails to resolve quickly and in the same way on every machine, whatever its resolver.
    async fn nxdomain_dns() -> SocketAddr {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                if n < 12 {
                    continue;
                }
                // The query itself, turned into its answer: QR set, RCODE 3 (NXDOMAIN).
                buf[2] |= 0x80;
                buf[3] = (buf[3] & 0xf0) | 3;
                let _ = sock.send_to(&buf[..n], from).await;
            }
        });
        addr
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

    /// Every address on port 80, as a DNS answer valid for a minute.
    fn answer(last_octets: &[u8]) -> Result<Answer, String> {
        let found = last_octets
            .iter()
            .map(|o| (SocketAddr::from(([127, 0, 0, *o], 80)), 0, 0))
            .collect();
        Ok((found, Instant::now() + 60 * S))
    }

    fn retry_in(s: &TargetSet) -> Duration {
        let until = lock(&s.entries[0].resolved).valid_until;
        until.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        })
    }

    #[tokio::test]
    async fn lookup_retries_follow_the_contract_schedule_and_a_good_answer_resets_it() {
        let s = set(&["svc.test:80"]);
        let e = &s.entries[0];
        let fail = || Err::<Answer, _>("svc.test does not resolve".to_string());
        for base in [1, 2, 4, 8, 16, 30, 30] {
            s.apply(e, fail(), 0);
            let wait = retry_in(&s);
            // Never sooner than the base (a few ms may have passed since), at most 25 % later.
            let base = base * S;
            assert!(
                wait + S / 20 >= base && wait <= base + base / 4,
                "{wait:?} for {base:?}"
            );
        }
        assert_eq!(s.lookup_failures(), 7);
        s.apply(e, answer(&[1]), 0);
        assert!(s.problems().is_empty());
        s.apply(e, fail(), 0);
        assert!(retry_in(&s) <= S + S / 4, "not reset: {:?}", retry_in(&s));
        // The last good answer is kept through failures.
        assert_eq!(s.endpoints().len(), 1);
    }

    #[tokio::test]
    async fn an_endpoint_that_an_answer_drops_is_retired_and_its_probe_ends() {
        let s = set(&["svc.test:80"]);
        let e = &s.entries[0];
        let mut changes = s.changes();
        s.apply(e, answer(&[1, 2]), 0);
        assert!(
            changes.has_changed().unwrap_or(false),
            "the first answer is a change"
        );
        changes.borrow_and_update();
        let eps = s.endpoints();
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let base = tasks();
        eps[0].eject("test", Duration::from_millis(100));
        assert_eq!(tasks(), base + 1, "its probe");
        // The same answer again: same endpoints, no change.
        s.apply(e, answer(&[2, 1]), 0);
        assert!(!changes.has_changed().unwrap_or(true));
        assert!(s
            .endpoints()
            .iter()
            .all(|n| eps.iter().any(|o| Arc::ptr_eq(n, o))));
        // 127.0.0.1 vanishes: retired, its probe gone well before its 1 s backoff ends.
        s.apply(e, answer(&[2]), 0);
        assert!(changes.has_changed().unwrap_or(false));
        assert!(eps[0].is_retired() && !eps[1].is_retired());
        let deadline = Instant::now() + S / 2;
        while (tasks() > base || eps[0].is_probing()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tasks(), base, "a probe is left behind");
        assert!(!eps[0].is_probing());
        // A new address is a change too, and is not retired.
        changes.borrow_and_update();
        s.apply(e, answer(&[2, 3]), 0);
        assert!(changes.has_changed().unwrap_or(false));
        assert!(s.endpoints().iter().all(|n| !n.is_retired()));
    }

    #[tokio::test]
    async fn a_new_resolver_expires_names_and_drops_answers_from_the_old_one() {
        let s = set(&["svc.test:80", "127.0.0.9:80"]);
        let e = &s.entries[0];
        s.apply(e, answer(&[1]), 0);
        assert!(!s.needs_refresh());
        let other = Resolver::new(&DnsConfig {
            servers: vec![([127, 0, 0, 1], 9).into()],
            min_ttl: S,
        });
        s.set_resolver(other);
        assert!(s.needs_refresh(), "the name was not expired");
        // The literal stays as it is; the name keeps its endpoint until a new answer comes.
        assert!(lock(&s.entries[1].resolved).valid_until > Some(Instant::now() + S));
        assert_eq!(s.endpoints().len(), 2);
        // An answer looked up through the old resolver arrives late: dropped.
        s.apply(e, answer(&[2]), 0);
        assert!(s.needs_refresh());
        assert!(s
            .endpoints()
            .iter()
            .any(|n| n.addr.to_string() == "tcp://127.0.0.1:80"));
        s.apply(e, answer(&[2]), 1);
        assert!(!s.needs_refresh());
        assert!(s
            .endpoints()
            .iter()
            .any(|n| n.addr.to_string() == "tcp://127.0.0.2:80"));
    }

    #[tokio::test]
    async fn dropping_a_set_retires_its_endpoints() {
        let s = set(&["127.0.0.1:1"]);
        let ep = s.endpoints()[0].clone();
        drop(s);
        assert!(ep.is_retired());
    }

    #[tokio::test]
    async fn failed_lookups_through_a_dns_server_are_retried_with_backoff() {
        let s = set_via(&["name.invalid:80"], nxdomain_dns().await);
        for base in [1, 2, 4] {
            lock(&s.entries[0].resolved).valid_until = None;
            let before = Instant::now();
            s.refresh().await;
            let after = Instant::now();
            let until = lock(&s.entries[0].resolved).valid_until.unwrap_or(before);
            // Measured from the failure, which lies between `before` and `after`: bounds that
            // hold however long the lookup took.
            let base = base * S;
            assert!(until >= before + base, "retry sooner than {base:?}");
            assert!(
                until <= after + base + base / 4,
                "retry later than {base:?} + 25 %"
            );
        }
        assert_eq!(s.lookup_failures(), 3);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_problem_not_a_panic() {
        let s = set_via(&["name.invalid:80"], nxdomain_dns().await);
        s.refresh().await;
        assert!(s.endpoints().is_empty());
        let p = s.problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("name.invalid"), "{p:?}");
    }
}
