//! The per-client state of a service: for each client IP address of its listeners, the sessions
//! it has open (`max_sessions_per_client`) and its token bucket (`new_sessions_per_client`).
//!
//! Memory stays bounded whatever the clients do:
//! - an address is forgotten as soon as it is idle — no session open and nothing taken from its
//!   bucket for a second, when the bucket is full again and a fresh entry would be the same. An
//!   address whose last session ends while idle is removed right then; the others are swept at
//!   most once per second, when a session is admitted;
//! - at most [`CAP`] addresses are tracked. When the table is full of addresses that are not
//!   idle, a new address is admitted *untracked*: its session counts towards `max_sessions`
//!   only. Refusing instead would let whoever fills the table (a client spraying source
//!   addresses, each active within the last second) lock every other new client out, while
//!   admitting gives the sprayer nothing it did not already have: every address it adds would
//!   have had a fresh entry of its own anyway. `max_sessions` bounds the service either way,
//!   and the node logs that the table is full at most once per second (see [`Tracked::No`]).
//!
//! The map hashes with the standard library's keyed SipHash, so addresses chosen by a client
//! cannot be made to collide.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use busway_config::ServiceLimits;
use tokio::time::Instant;

use super::bucket::{TokenBucket, REFILL};
use crate::metrics::Limit;

/// Addresses tracked per service at most. An entry (address, count and bucket) is 56 bytes and
/// the hash table keeps a control byte per slot and at least 1/8 of its slots free, so this
/// many fit in 65,536 slots: about 3.6 MiB per service at the worst.
pub const CAP: usize = 50_000;

#[derive(Debug)]
struct Client {
    /// Sessions of this address open now.
    open: u32,
    /// `None` until the first take: an untouched bucket is full.
    bucket: Option<TokenBucket>,
}

impl Client {
    fn idle(&self, now: Instant) -> bool {
        self.open == 0 && self.bucket.is_none_or(|b| b.idle(now))
    }
}

#[derive(Debug)]
struct Inner {
    map: HashMap<IpAddr, Client>,
    swept: Instant,
    /// When the node last said the table is full.
    full_logged: Option<Instant>,
}

/// Whether an admitted client's session was counted in the table, so its end must be too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked {
    Yes,
    /// The table was full: the session counts towards `max_sessions` only. `say`: the first
    /// time in a second, for the caller to log it.
    No {
        say: bool,
    },
}

#[derive(Debug)]
pub struct ClientTable {
    inner: Mutex<Inner>,
    cap: usize,
}

impl Default for ClientTable {
    fn default() -> Self {
        ClientTable::with_cap(CAP)
    }
}

impl ClientTable {
    pub fn with_cap(cap: usize) -> Self {
        ClientTable {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                swept: Instant::now(),
                full_logged: None,
            }),
            cap,
        }
    }

    /// Admits a new session of `ip` under `limits`, checking in order its bucket, its open
    /// sessions, then `and` (the service-wide limit, checked under the same lock so a refusal
    /// by it leaves the client's state untouched). A refused session takes no token.
    pub fn admit(
        &self,
        ip: IpAddr,
        limits: &ServiceLimits,
        and: impl FnOnce() -> Result<(), Limit>,
    ) -> Result<Tracked, Limit> {
        let now = Instant::now();
        let rate = limits.new_sessions_per_client;
        let max = limits.max_sessions_per_client;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(inner.swept) >= REFILL {
            inner.sweep(now);
        }
        if let Some(c) = inner.map.get(&ip) {
            if rate > 0 && c.bucket.is_some_and(|b| !b.ready(rate, now)) {
                return Err(Limit::NewSessionsPerClient);
            }
            if max > 0 && c.open >= max {
                return Err(Limit::MaxSessionsPerClient);
            }
        }
        and()?;
        if !inner.map.contains_key(&ip) && inner.map.len() >= self.cap {
            let say = inner.say_full(now);
            return Ok(Tracked::No { say });
        }
        let c = inner.map.entry(ip).or_insert(Client {
            open: 0,
            bucket: None,
        });
        if rate > 0 {
            let bucket = c.bucket.get_or_insert_with(|| TokenBucket::full(rate, now));
            bucket.take(rate, now);
        }
        c.open += 1;
        Ok(Tracked::Yes)
    }

    /// Counts the end of a tracked session of `ip`, forgetting the address if it is now idle.
    pub fn release(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = inner.map.get_mut(&ip) {
            c.open = c.open.saturating_sub(1);
            if c.idle(now) {
                inner.map.remove(&ip);
            }
        }
    }

    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions `ip` has open, as tracked.
    pub fn open(&self, ip: IpAddr) -> u32 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.map.get(&ip).map_or(0, |c| c.open)
    }
}

impl Inner {
    /// Forgets the idle addresses, and gives back the memory of a table a flood left mostly
    /// empty.
    fn sweep(&mut self, now: Instant) {
        self.map.retain(|_, c| !c.idle(now));
        if self.map.capacity() > 1024 && self.map.len() < self.map.capacity() / 4 {
            self.map.shrink_to(self.map.len() * 2);
        }
        self.swept = now;
    }

    /// Whether to log that the table is full: at most once per second.
    fn say_full(&mut self, now: Instant) -> bool {
        if self
            .full_logged
            .is_some_and(|t| now.saturating_duration_since(t) < REFILL)
        {
            return false;
        }
        self.full_logged = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn limits(max: u32, rate: u32) -> ServiceLimits {
        ServiceLimits {
            max_sessions_per_client: max,
            new_sessions_per_client: rate,
            ..ServiceLimits::default()
        }
    }

    fn ok() -> Result<(), Limit> {
        Ok(())
    }

    async fn advance_ms(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn open_sessions_per_address() {
        let t = ClientTable::default();
        let l = limits(2, 0);
        assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.admit(ip(1), &l, ok), Err(Limit::MaxSessionsPerClient));
        // Another address has its own count.
        assert_eq!(t.admit(ip(2), &l, ok), Ok(Tracked::Yes));
        t.release(ip(1));
        assert_eq!(t.open(ip(1)), 1);
        assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        // Without a bucket, an address whose last session ends is forgotten at once.
        t.release(ip(2));
        assert_eq!(t.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn new_sessions_per_address_refill() {
        let t = ClientTable::default();
        let l = limits(0, 3);
        for _ in 0..3 {
            assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        }
        assert_eq!(t.admit(ip(1), &l, ok), Err(Limit::NewSessionsPerClient));
        assert_eq!(t.admit(ip(2), &l, ok), Ok(Tracked::Yes));
        advance_ms(334).await;
        assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.admit(ip(1), &l, ok), Err(Limit::NewSessionsPerClient));
        advance_ms(1000).await;
        for _ in 0..3 {
            assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        }
        // Ending sessions gives no token back: the bucket limits new sessions, not open ones.
        for _ in 0..7 {
            t.release(ip(1));
        }
        assert_eq!(t.admit(ip(1), &l, ok), Err(Limit::NewSessionsPerClient));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_changes_nothing() {
        let t = ClientTable::default();
        let l = limits(1, 1);
        let full = || Err(Limit::MaxSessions);
        assert_eq!(t.admit(ip(1), &l, full), Err(Limit::MaxSessions));
        // No token taken, no session counted, nothing kept.
        assert_eq!(t.len(), 0);
        assert_eq!(t.admit(ip(1), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.admit(ip(1), &l, ok), Err(Limit::NewSessionsPerClient));
        advance_ms(1000).await;
        // The bucket is full again but one session is open.
        assert_eq!(t.admit(ip(1), &l, ok), Err(Limit::MaxSessionsPerClient));
        assert_eq!(t.open(ip(1)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_addresses_are_forgotten() {
        let t = ClientTable::default();
        let l = limits(0, 10);
        for n in 0..100 {
            assert_eq!(t.admit(ip(n), &l, ok), Ok(Tracked::Yes));
            t.release(ip(n));
        }
        // Their buckets are not full yet: kept, or they could come back for a fresh one.
        assert_eq!(t.len(), 100);
        assert_eq!(t.admit(ip(500), &l, ok), Ok(Tracked::Yes));
        advance_ms(1000).await;
        // The next admission sweeps: only the address with a session open stays.
        assert_eq!(t.admit(ip(501), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.len(), 2);
        assert_eq!(t.open(ip(500)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_admits_new_addresses_untracked() {
        let t = ClientTable::with_cap(4);
        let l = limits(1, 0);
        for n in 0..4 {
            assert_eq!(t.admit(ip(n), &l, ok), Ok(Tracked::Yes));
        }
        assert_eq!(t.admit(ip(9), &l, ok), Ok(Tracked::No { say: true }));
        assert_eq!(t.admit(ip(9), &l, ok), Ok(Tracked::No { say: false }));
        // Tracked addresses keep their limits.
        assert_eq!(t.admit(ip(0), &l, ok), Err(Limit::MaxSessionsPerClient));
        // The service-wide limit still applies to the untracked.
        let full = || Err(Limit::MaxSessions);
        assert_eq!(t.admit(ip(9), &l, full), Err(Limit::MaxSessions));
        advance_ms(1000).await;
        assert_eq!(t.admit(ip(9), &l, ok), Ok(Tracked::No { say: true }));
        t.release(ip(3));
        assert_eq!(t.admit(ip(9), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spray_of_addresses_stays_within_the_cap() {
        let cap = 1000;
        let t = ClientTable::with_cap(cap);
        let l = limits(5, 5);
        let mut tracked = 0;
        // 200,000 addresses over two seconds, one session each that ends at once.
        for n in 0..200_000u32 {
            if n % 10_000 == 0 {
                advance_ms(100).await;
            }
            if t.admit(ip(n), &l, ok) == Ok(Tracked::Yes) {
                tracked += 1;
                t.release(ip(n));
            }
            assert!(t.len() <= cap);
        }
        // Each second's sweep made room again.
        assert!(tracked >= 2 * cap, "{tracked}");
        advance_ms(1000).await;
        assert_eq!(t.admit(ip(300_000), &l, ok), Ok(Tracked::Yes));
        assert_eq!(t.len(), 1);
        // What CAP's memory figure assumes.
        assert!(std::mem::size_of::<(IpAddr, Client)>() <= 56);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_fits_in_65536_slots() {
        let t = ClientTable::default();
        let l = limits(1, 0);
        for n in 0..CAP as u32 + 10 {
            t.admit(ip(n), &l, ok).unwrap();
        }
        assert_eq!(t.len(), CAP);
        let inner = t.inner.lock().unwrap();
        // hashbrown fills at most 7/8 of its 65,536 slots.
        assert!(
            inner.map.capacity() <= 65_536 / 8 * 7,
            "{}",
            inner.map.capacity()
        );
    }
}
