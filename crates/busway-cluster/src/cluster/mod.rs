//! The member state machine: datagrams and instants in, decisions and datagrams out.
//!
//! Split by concern: `inbound.rs` takes datagrams, `timers.rs` the clock, `ownership.rs`
//! decides who holds the address, `record.rs` keeps the history (events, pushes, pulls).
//! This file holds the state they share and the small helpers they all use.

mod inbound;
mod ownership;
mod record;
mod timers;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::garp::Burst;
use crate::history::sync::Pull;
use crate::history::{Event, History, Snapshot};
use crate::member::Member;
use crate::metrics::{Metrics, RejectLog, RejectReason};
use crate::output::{Notice, Output};
use crate::rank::Rank;
use crate::replay::ReplayGuard;
use crate::wire::{Advert, Body, Header, Message, Role, Sealer};

/// Most other members kept; adverts from further names are ignored.
pub const MAX_MEMBERS: usize = 64;
/// How often the owner renews the address's lifetime ([`Output::RefreshAddress`]).
pub const ADDRESS_REFRESH: Duration = Duration::from_secs(1);
/// The lifetime the driver should give the address: three refreshes, so only a dead or stopped
/// owner loses it.
pub const ADDRESS_LIFETIME: Duration = Duration::from_secs(3);
/// How long a confirmed death is remembered, so a stale "my owner is X" from a slower member
/// does not hold back the takeover.
const TOMBSTONE: Duration = Duration::from_secs(30);

/// What this node is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Listening for a cluster until then.
    Joining {
        until: Instant,
    },
    Member,
    Owner,
    /// Said goodbye; takes no further part.
    Left,
}

/// How the node starts: the clock, the wall clock at that instant, and whether the service
/// address is already on the interface (a leftover of an earlier run, removed at once).
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    pub now: Instant,
    /// Unix time in milliseconds at `now`: dates history events and seeds sequence numbers.
    pub unix_ms: u64,
    pub address_present: bool,
}

/// One member of the LAN cluster, sans IO. See docs/CLUSTER.md.
pub struct Cluster {
    cfg: Config,
    sealer: Sealer,
    history: History,
    /// The era of the cluster this node is in; 0 until it joins or founds one.
    era: u32,
    state: State,
    holds_address: bool,
    members: BTreeMap<String, Member>,
    /// Deaths confirmed here, and when.
    tombstones: BTreeMap<String, Instant>,
    /// Members seen to go while this node was not the owner, for it to record if it takes over.
    departed: Vec<(String, u32)>,
    /// Other owners heard since this one last took the address (each restarts the ARP burst once).
    conflicts: Vec<String>,
    replay: ReplayGuard,
    seq: u64,
    next_advert: Instant,
    garp: Option<Burst>,
    next_refresh: Option<Instant>,
    pull: Option<Pull>,
    last_pull: Option<Instant>,
    next_request: u32,
    /// Events recorded during this input, merged and pushed when it ends.
    fresh: Vec<Event>,
    base: Instant,
    base_unix_ms: u64,
    last_at_ms: u64,
    metrics: Metrics,
    reject_log: RejectLog,
    out: VecDeque<Output>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.cfg.node)
            .field("era", &self.era)
            .field("state", &self.state)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A member starting now with the history it kept (empty without `state_dir`). It removes
    /// a leftover address first, then says hello and listens for a cluster.
    pub fn new(cfg: Config, history: History, boot: Boot) -> Result<Cluster, ConfigError> {
        cfg.validate()?;
        let sealer = Sealer::new(&cfg.cluster_id, &cfg.secret);
        let discovery = cfg.timing.discovery();
        let mut c = Cluster {
            sealer,
            history,
            era: 0,
            state: State::Joining {
                until: boot.now + discovery,
            },
            holds_address: false,
            members: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            departed: Vec::new(),
            conflicts: Vec::new(),
            replay: ReplayGuard::default(),
            // Microseconds since the epoch: a restart's numbers exceed the last run's, as long
            // as that run sent fewer than a million datagrams a second.
            seq: boot.unix_ms.saturating_mul(1000),
            next_advert: boot.now,
            garp: None,
            next_refresh: None,
            pull: None,
            last_pull: None,
            next_request: 1,
            fresh: Vec::new(),
            base: boot.now,
            base_unix_ms: boot.unix_ms,
            last_at_ms: 0,
            metrics: Metrics::default(),
            reject_log: RejectLog::default(),
            out: VecDeque::new(),
            cfg,
        };
        if boot.address_present {
            c.out.push_back(Output::RemoveAddress);
        }
        c.send_advert(boot.now);
        Ok(c)
    }

    /// The next decision or datagram, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether this node holds the service address.
    pub fn is_owner(&self) -> bool {
        self.state == State::Owner
    }

    /// The cluster's era as this node knows it; 0 before it joined or founded one.
    pub fn era(&self) -> u32 {
        self.era
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// What to persist in `state_dir`.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            incarnation: self.cfg.incarnation,
            history: self.history.clone(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The owner as this node sees it: itself, the best-ranked member claiming it, or none.
    pub fn owner(&self) -> Option<&str> {
        if self.is_owner() {
            return Some(&self.cfg.node);
        }
        self.followed_owner().map(|m| m.name.as_str())
    }

    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics.clone();
        m.owner = self.is_owner();
        m.members = 1 + self.members.len();
        m.era = self.era;
        m.history_events = self.history.len();
        m
    }

    /// Leaves the cluster cleanly: gives the address up and tells the others, so they take
    /// over without waiting for `dead_after`.
    pub fn leave(&mut self, now: Instant) {
        if self.state == State::Left {
            return;
        }
        if self.holds_address {
            self.holds_address = false;
            self.out.push_back(Output::RemoveAddress);
        }
        self.garp = None;
        self.next_refresh = None;
        self.state = State::Left;
        // Twice: one lost goodbye would cost the others the whole takeover wait.
        self.send_advert(now);
        self.send_advert(now);
    }

    /// The other members, live or suspected, by name.
    pub(crate) fn member_list(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    fn my_rank(&self) -> Rank<'_> {
        Rank {
            priority: self.cfg.priority,
            events: self.history.len() as u32,
            name: &self.cfg.node,
        }
    }

    /// The best-ranked other member claiming the address.
    fn followed_owner(&self) -> Option<&Member> {
        self.members
            .values()
            .filter(|m| m.is_owner())
            .max_by(|a, b| a.rank().cmp(&b.rank()))
    }

    fn role(&self) -> Role {
        match self.state {
            State::Joining { .. } => Role::Joining,
            State::Member => Role::Member,
            State::Owner => Role::Owner,
            State::Left => Role::Leaving,
        }
    }

    fn advert(&self) -> Advert {
        Advert {
            role: self.role(),
            priority: self.cfg.priority,
            events: self.history.len() as u32,
            digest: self.history.digest(),
            owner: self.owner().unwrap_or_default().to_owned(),
            bus: self.cfg.bus_address.clone(),
            interval_ms: u32::try_from(self.cfg.timing.advert_interval.as_millis())
                .unwrap_or(u32::MAX),
        }
    }

    fn seal(&mut self, body: Body) -> Vec<u8> {
        self.seq += 1;
        let m = Message {
            header: Header {
                cluster: self.cfg.cluster_id.clone(),
                node: self.cfg.node.clone(),
                incarnation: self.cfg.incarnation,
                seq: self.seq,
                era: self.era,
            },
            body,
        };
        self.sealer.seal(&m)
    }

    fn multicast(&mut self, body: Body) {
        let d = self.seal(body);
        self.out.push_back(Output::Multicast(d));
    }

    fn send(&mut self, to: SocketAddr, body: Body) {
        let datagram = self.seal(body);
        self.out.push_back(Output::Send { to, datagram });
    }

    /// Multicasts our advert now and restarts the interval from here.
    fn send_advert(&mut self, now: Instant) {
        let a = self.advert();
        self.multicast(Body::Advert(a));
        self.next_advert = now + self.cfg.timing.advert_interval;
    }

    fn notice(&mut self, n: Notice) {
        self.out.push_back(Output::Notice(n));
    }

    fn reject(&mut self, reason: RejectReason, from: SocketAddr, detail: String, now: Instant) {
        self.metrics.reject(reason);
        if let Some(suppressed) = self.reject_log.report(reason, now) {
            self.out.push_back(Output::Rejected {
                reason,
                from,
                detail,
                suppressed,
            });
        }
    }

    /// Unix milliseconds for an event recorded now: strictly increasing, so our own events keep
    /// their order even within one millisecond or if the wall clock steps back.
    fn event_time(&mut self, now: Instant) -> u64 {
        let wall = self.unix_ms(now);
        self.last_at_ms = wall.max(self.last_at_ms + 1);
        self.last_at_ms
    }

    /// The wall clock at `now`, as the driver gave it at boot plus the monotonic time since.
    fn unix_ms(&self, now: Instant) -> u64 {
        self.base_unix_ms + now.saturating_duration_since(self.base).as_millis() as u64
    }

    fn fresh_id(&mut self) -> u32 {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        id
    }
}
