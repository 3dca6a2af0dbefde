//! The election of `[cluster] backend = "etcd"`, sans IO (docs/CLUSTER.md, "The etcd backend").
//!
//! The owner of the service address is whoever holds one etcd key, created in a transaction
//! that succeeds only while the key does not exist and bound to the creator's lease. This
//! machine decides, from what the driver reports of etcd (the lease renewed, the key and the
//! member records as a snapshot and then as watch events, a claim won or lost, the session
//! lost), when to claim the key, when to give it back, and when to add or remove the address.
//!
//! Its one rule of safety: the address is held only while this node's lease is certainly alive
//! on the etcd server. A keepalive sent at `sent` and answered with a TTL of `ttl` keeps the
//! lease until at least `sent + ttl` (etcd starts the TTL when the request arrives, which is
//! after it was sent), so the address goes at `sent + ttl - MARGIN` unless a later keepalive
//! was answered: another member can only take the key once etcd expired the lease, which is
//! later. Nothing here needs etcd to answer to make the address go.
//!
//! - `decide`: the rules that turn what is known into outputs;
//! - `report`: `GET /v1/cluster` and the metrics.

mod decide;
mod report;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::garp::Burst;
use crate::history::History;

/// How long before the lease's earliest possible expiry the owner removes the address: covers a
/// late timer and the netlink call, so the address is gone before any other member can win.
pub const MARGIN: Duration = Duration::from_millis(200);

/// The longest lease believed: more than a day is a broken answer, not a lease.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);

/// After the key is found free, how long the member ranked `k`-th (0 is the best live member)
/// waits before it claims, `k × CLAIM_STAGGER`: the best claims at once, the next only if the
/// best did not (it died too, its lease not expired yet), so the address moves once, to the
/// best-ranked survivor.
pub const CLAIM_STAGGER: Duration = Duration::from_millis(150);

/// This member, as the others see it in its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub node: String,
    pub priority: u32,
    /// Its bus URL.
    pub bus_address: String,
    pub incarnation: u32,
}

/// A member record under `PREFIX/cluster/ID/members/NAME`, bound to that member's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub priority: u32,
    pub bus: String,
    pub incarnation: u32,
}

/// Who holds the owner key: a node name and the lease the key is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub lease: i64,
}

/// What the driver saw of etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A keepalive of `lease` (or its grant) sent at `sent` was answered with `ttl`. A new
    /// lease id means the old one is gone.
    Renewed {
        lease: i64,
        sent: Instant,
        ttl: Duration,
    },
    /// The owner key and every member record at one revision: a new session, or a resync.
    Snapshot {
        owner: Option<Holder>,
        members: Vec<Peer>,
    },
    /// The owner key was created, changed (`Some`) or deleted (`None`).
    Owner(Option<Holder>),
    MemberUp(Peer),
    MemberDown(String),
    /// The answer to [`LeaseOutput::Claim`].
    Claimed {
        won: bool,
    },
    /// The session with etcd ended: the view is kept, nothing is claimed until the next
    /// snapshot, and an address held goes when the lease may have expired.
    Down,
}

/// What the machine asks of its driver, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutput {
    /// Add the service address with this valid and preferred lifetime: the kernel removes it by
    /// itself if this process stops renewing it (killed, or frozen).
    AddAddress {
        lifetime: Duration,
    },
    /// Renew the address's lifetime.
    RefreshAddress {
        lifetime: Duration,
    },
    RemoveAddress,
    SendGratuitousArp,
    /// Create the owner key under this node's lease if it does not exist; answer with
    /// [`Seen::Claimed`].
    Claim,
    /// Delete the owner key if it is still under this node's lease.
    Resign,
    Notice(LeaseNotice),
}

/// Something worth a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseNotice {
    /// This node holds the key and now the address.
    Owner,
    /// The address was removed because the lease may expire (etcd did not renew it in time),
    /// or the key is no longer under this node's lease.
    Lost {
        why: &'static str,
    },
    /// This node gave the key up to a member of higher priority.
    Yielded {
        to: String,
    },
    MemberUp {
        node: String,
    },
    MemberDown {
        node: String,
    },
}

/// One member's election.
#[derive(Debug)]
pub struct LeaseElection {
    config: LeaseConfig,
    /// `unix_ms` at `boot`, to date history events.
    boot: (Instant, u64),
    /// The lease in use, as last renewed.
    lease: Option<i64>,
    /// Until when the lease is certainly alive on the server, less [`MARGIN`].
    safe_until: Option<Instant>,
    /// The session is up: a snapshot came since the last [`Seen::Down`].
    connected: bool,
    /// Since when etcd was last heard (for `last_seen_ms` while it is away).
    down_since: Option<Instant>,
    owner: Option<Holder>,
    /// The other members, by name.
    peers: BTreeMap<String, Peer>,
    /// The address is on the interface.
    holding: bool,
    /// A claim is out, not answered yet.
    claiming: bool,
    /// A resignation is out, or a claim was lost: no claim (nor take) until the key changes.
    waiting: bool,
    /// When the key was found free (the claim stagger counts from it).
    free_since: Option<Instant>,
    burst: Option<Burst>,
    left: bool,
    takeovers: u64,
    history: History,
    out: VecDeque<LeaseOutput>,
}

impl LeaseElection {
    pub fn new(config: LeaseConfig, now: Instant, unix_ms: u64) -> LeaseElection {
        LeaseElection {
            config,
            boot: (now, unix_ms),
            lease: None,
            safe_until: None,
            connected: false,
            down_since: Some(now),
            owner: None,
            peers: BTreeMap::new(),
            holding: false,
            claiming: false,
            waiting: false,
            free_since: None,
            burst: None,
            left: false,
            takeovers: 0,
            history: History::new(),
            out: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Whether this node holds the address.
    pub fn is_owner(&self) -> bool {
        self.holding
    }

    /// The next output, `None` when there is none.
    pub fn poll_output(&mut self) -> Option<LeaseOutput> {
        self.out.pop_front()
    }

    /// When [`LeaseElection::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.holding {
            at(self.burst.as_ref().and_then(Burst::due));
            at(self.safe_until);
        }
        at(self.claim_at());
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        if self.holding {
            if let Some(b) = &mut self.burst {
                if b.fire(now) {
                    self.out.push_back(LeaseOutput::SendGratuitousArp);
                }
            }
        }
        self.decide(now);
    }

    /// One thing seen of etcd.
    pub fn handle(&mut self, now: Instant, seen: Seen) {
        if self.left {
            return;
        }
        match seen {
            Seen::Renewed { lease, sent, ttl } => {
                // A TTL beyond any etcd's (a broken answer) must not overflow the clock.
                let until = sent
                    .checked_add(ttl.min(MAX_TTL))
                    .and_then(|t| t.checked_sub(MARGIN))
                    .unwrap_or(sent);
                if self.lease != Some(lease) {
                    self.lease = Some(lease);
                    self.safe_until = Some(until);
                } else {
                    self.safe_until = Some(self.safe_until.map_or(until, |t| t.max(until)));
                }
                if self.holding && self.mine() {
                    let lifetime = self.lifetime(now);
                    self.out.push_back(LeaseOutput::RefreshAddress { lifetime });
                }
            }
            Seen::Snapshot { owner, members } => {
                self.connected = true;
                self.down_since = None;
                let names: Vec<String> = self.peers.keys().cloned().collect();
                for n in names {
                    if !members.iter().any(|m| m.name == n) {
                        self.peer_down(now, &n);
                    }
                }
                for m in members {
                    self.peer_up(now, m);
                }
                // A fresh view: whatever was awaited is in it, and a free key's stagger
                // counts from now.
                self.waiting = false;
                if owner.is_none() {
                    self.free_since = Some(now);
                }
                self.set_owner(now, owner);
            }
            Seen::Owner(owner) => self.set_owner(now, owner),
            Seen::MemberUp(p) => self.peer_up(now, p),
            Seen::MemberDown(name) => self.peer_down(now, &name),
            Seen::Claimed { won } => {
                self.claiming = false;
                match (won, self.lease) {
                    (true, Some(lease)) => {
                        let me = Holder {
                            name: self.config.node.clone(),
                            lease,
                        };
                        self.set_owner(now, Some(me));
                    }
                    // Someone was first: the watch is about to say who.
                    _ => self.waiting = true,
                }
            }
            Seen::Down => {
                self.connected = false;
                self.claiming = false;
                self.down_since.get_or_insert(now);
            }
        }
        self.decide(now);
    }

    /// A clean stop: the address goes now; the driver then revokes the lease, which deletes
    /// the key and the record at once, so the next member claims without waiting for a TTL.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        if self.holding {
            self.remove(now, None);
        }
        self.left = true;
    }

    fn peer_up(&mut self, now: Instant, p: Peer) {
        if p.name == self.config.node {
            return;
        }
        let new = self.peers.get(&p.name).map(|o| o.incarnation) != Some(p.incarnation);
        if new {
            self.out
                .push_back(LeaseOutput::Notice(LeaseNotice::MemberUp {
                    node: p.name.clone(),
                }));
            self.record(now, crate::EventKind::Join, &p.name, p.incarnation);
        }
        self.peers.insert(p.name.clone(), p);
    }

    fn peer_down(&mut self, now: Instant, name: &str) {
        if let Some(p) = self.peers.remove(name) {
            self.out
                .push_back(LeaseOutput::Notice(LeaseNotice::MemberDown {
                    node: p.name.clone(),
                }));
            self.record(now, crate::EventKind::Leave, &p.name, p.incarnation);
        }
    }

    fn set_owner(&mut self, now: Instant, owner: Option<Holder>) {
        if owner == self.owner {
            return;
        }
        if owner.is_none() {
            self.free_since = Some(now);
        }
        if let Some(h) = &owner {
            let incarnation = if h.name == self.config.node {
                self.config.incarnation
            } else {
                self.peers.get(&h.name).map_or(0, |p| p.incarnation)
            };
            self.record(now, crate::EventKind::Takeover, &h.name, incarnation);
        }
        // A resignation, or a lost claim, is over once the key changes.
        self.waiting = false;
        self.owner = owner;
    }

    /// Whether the owner key is under this node's current lease.
    fn mine(&self) -> bool {
        matches!((&self.owner, self.lease), (Some(h), Some(l)) if h.lease == l && h.name == self.config.node)
    }

    /// The address's lifetime: the whole seconds left before the lease may expire, less one
    /// for the kernel's lifetime check (which runs late rather than early), at least 1 s.
    fn lifetime(&self, now: Instant) -> Duration {
        let left = self
            .safe_until
            .map_or(0, |t| t.saturating_duration_since(now).as_secs());
        Duration::from_secs(left.saturating_sub(1).max(1))
    }

    fn record(&mut self, now: Instant, kind: crate::EventKind, node: &str, incarnation: u32) {
        let at_ms = self.boot.1 + now.saturating_duration_since(self.boot.0).as_millis() as u64;
        // Strictly increasing per recorder, as the history's order wants.
        let at_ms = self
            .history
            .last()
            .map_or(at_ms, |e| at_ms.max(e.at_ms + 1));
        self.history.note_era(1);
        self.history.merge([crate::Event {
            era: 1,
            at_ms,
            recorder: self.config.node.clone(),
            kind,
            node: node.to_string(),
            incarnation,
        }]);
    }
}
