//! A simulated LAN for whole clusters on a fake clock.
//!
//! Every node runs a real [`Cluster`]; the LAN carries its datagrams with a fixed latency, may
//! lose each copy with a seeded probability, and can be partitioned. A node can be killed
//! (its process gone, its address left on the interface as kill -9 leaves it), frozen (as by
//! SIGSTOP: its socket keeps what arrives, its clock stands still) and thawed, or restarted
//! with what it persisted. The LAN also checks, at every step, the rule that a node never
//! removes an address it did not add, except a leftover at start.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use busway_cluster::wire::{Body, Message, Sealer};
use busway_cluster::{Boot, Cluster, Config, History, Output, Snapshot, Timing};

use crate::flight::Flight;
pub use crate::flight::Rng;

pub const CLUSTER: &str = "lab";
pub const SECRET: &[u8] = b"lab secret";
pub const LATENCY: Duration = Duration::from_micros(300);
/// Unix time of the simulation's start.
pub const EPOCH_MS: u64 = 1_750_000_000_000;

pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub cfg: Config,
    pub cluster: Option<Cluster>,
    pub frozen: bool,
    /// Datagrams that reached its socket while it was frozen.
    buffered: Vec<(SocketAddr, Vec<u8>)>,
    /// Whether the service address is on its interface.
    pub has_address: bool,
    /// Whether this run of the process added it (what may be removed).
    added: bool,
    /// What it persisted, handed to its next start.
    pub saved: Option<Snapshot>,
    pub adds: Vec<Instant>,
    pub removes: Vec<Instant>,
    pub garps: Vec<Instant>,
    /// Every output but datagrams, with its time.
    pub log: Vec<(Instant, Output)>,
    /// Every datagram it sent, for replays.
    pub sent: Vec<Vec<u8>>,
}

impl Node {
    pub fn c(&self) -> &Cluster {
        self.cluster.as_ref().expect("node is running")
    }

    pub fn c_mut(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("node is running")
    }

    pub fn running(&self) -> bool {
        self.cluster.is_some()
    }
}

pub struct Lan {
    pub base: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    flights: BinaryHeap<Reverse<Flight>>,
    order: u64,
    pub rng: Rng,
    /// Chance that one copy of a datagram is lost.
    pub loss: f64,
    /// Side of each node; nodes on different sides do not hear each other.
    side: Vec<u8>,
    pub timing: Timing,
    /// Copies dropped by loss.
    pub lost: u64,
    /// Steps at which the number of address holders was not one (once someone had it).
    pub not_one_holder: Vec<(Instant, usize)>,
}

impl Lan {
    pub fn new(seed: u64) -> Lan {
        let base = Instant::now();
        Lan {
            base,
            now: base,
            nodes: Vec::new(),
            flights: BinaryHeap::new(),
            order: 0,
            rng: Rng(seed),
            loss: 0.0,
            side: Vec::new(),
            timing: Timing::default(),
            lost: 0,
            not_one_holder: Vec::new(),
        }
    }

    /// Adds a node (not started) with this priority.
    pub fn add(&mut self, name: &str, priority: u32) -> usize {
        let i = self.nodes.len();
        let mut cfg = Config::new(CLUSTER, name, SECRET);
        cfg.priority = priority;
        cfg.timing = self.timing;
        cfg.bus_address = format!("tcp://198.18.0.{}:7100", i + 10);
        self.nodes.push(Node {
            name: name.into(),
            addr: SocketAddr::from(([198, 18, 0, i as u8 + 10], 7946)),
            cfg,
            cluster: None,
            frozen: false,
            buffered: Vec::new(),
            has_address: false,
            added: false,
            saved: None,
            adds: Vec::new(),
            removes: Vec::new(),
            garps: Vec::new(),
            log: Vec::new(),
            sent: Vec::new(),
        });
        self.side.push(0);
        i
    }

    /// Adds and starts a node.
    pub fn spawn(&mut self, name: &str, priority: u32) -> usize {
        let i = self.add(name, priority);
        self.start(i);
        i
    }

    /// Starts node `i` with what it persisted (its incarnation one more than the saved one).
    pub fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let (history, incarnation) = match &n.saved {
            Some(s) => (s.history.clone(), s.incarnation + 1),
            None => (History::new(), 1),
        };
        n.cfg.incarnation = incarnation;
        n.added = false;
        n.frozen = false;
        n.buffered.clear();
        let boot = Boot {
            now: self.now,
            unix_ms: EPOCH_MS + (self.now - self.base).as_millis() as u64,
            address_present: n.has_address,
        };
        n.cluster = Some(Cluster::new(n.cfg.clone(), history, boot).expect("valid config"));
        self.drain(i, true);
    }

    /// A clean shutdown of node `i`.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i].c_mut().leave(now);
        self.drain(i, false);
    }

    /// Prints every node's log, for debugging a test.
    #[allow(dead_code)]
    pub fn dump(&self) {
        for n in &self.nodes {
            for (t, o) in &n.log {
                eprintln!("{:>6} {} {:?}", self.ms(*t), n.name, o);
            }
        }
    }

    /// kill -9: the process is gone, the address stays on its interface.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].cluster = None;
    }

    pub fn freeze(&mut self, i: usize) {
        self.nodes[i].frozen = true;
    }

    /// SIGCONT: its timers fire late, then its socket is read.
    pub fn thaw(&mut self, i: usize) {
        self.thaw_with(i, true);
    }

    /// SIGCONT, with its late timers handled before or after what waits in its socket (a
    /// driver may see either first).
    pub fn thaw_with(&mut self, i: usize, timers_first: bool) {
        self.nodes[i].frozen = false;
        let now = self.now;
        if timers_first {
            self.nodes[i].c_mut().handle_timeout(now);
            self.drain(i, false);
        }
        for (from, bytes) in std::mem::take(&mut self.nodes[i].buffered) {
            self.nodes[i].c_mut().handle_datagram(now, from, &bytes);
            self.drain(i, false);
        }
        if !timers_first {
            self.nodes[i].c_mut().handle_timeout(now);
            self.drain(i, false);
        }
    }

    /// Splits the LAN: the nodes listed are on one side, the rest on the other.
    pub fn partition(&mut self, one_side: &[usize]) {
        for (i, s) in self.side.iter_mut().enumerate() {
            *s = u8::from(one_side.contains(&i));
        }
    }

    pub fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = 0);
    }

    /// Hands a datagram straight to node `i`'s socket, as an attacker on the LAN would.
    pub fn inject(&mut self, i: usize, from: SocketAddr, bytes: &[u8]) {
        let now = self.now;
        self.nodes[i].c_mut().handle_datagram(now, from, bytes);
        self.drain(i, false);
    }

    fn transmit(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if self.side[from] != self.side[to] {
            return;
        }
        if self.loss > 0.0 && self.rng.chance(self.loss) {
            self.lost += 1;
            return;
        }
        self.order += 1;
        self.flights.push(Reverse(Flight {
            at: self.now + LATENCY,
            order: self.order,
            to,
            from: self.nodes[from].addr,
            bytes: bytes.to_vec(),
        }));
    }

    fn drain(&mut self, i: usize, booting: bool) {
        let mut first = booting;
        while let Some(o) = self.nodes[i]
            .cluster
            .as_mut()
            .and_then(Cluster::poll_output)
        {
            let now = self.now;
            match &o {
                Output::Multicast(d) => {
                    self.nodes[i].sent.push(d.clone());
                    for j in 0..self.nodes.len() {
                        if j != i {
                            self.transmit(i, j, d);
                        }
                    }
                }
                Output::Send { to, datagram } => {
                    self.nodes[i].sent.push(datagram.clone());
                    if let Some(j) = self.nodes.iter().position(|n| n.addr == *to) {
                        self.transmit(i, j, datagram);
                    }
                }
                Output::AddAddress => {
                    let n = &mut self.nodes[i];
                    n.has_address = true;
                    n.added = true;
                    n.adds.push(now);
                }
                Output::RemoveAddress => {
                    let n = &mut self.nodes[i];
                    assert!(
                        n.added || first,
                        "{} removed an address it did not add, not at start",
                        n.name
                    );
                    n.has_address = false;
                    n.added = false;
                    n.removes.push(now);
                }
                Output::SendGratuitousArp => self.nodes[i].garps.push(now),
                Output::HistoryChanged => {
                    let s = self.nodes[i].c().snapshot();
                    self.nodes[i].saved = Some(s);
                }
                _ => {}
            }
            first = false;
            if !matches!(o, Output::Multicast(_) | Output::Send { .. }) {
                self.nodes[i].log.push((now, o));
            }
        }
    }

    fn next_timer(&self) -> Option<(Instant, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.running() && !n.frozen)
            .filter_map(|(i, n)| n.c().poll_timeout().map(|t| (t, i)))
            .min()
    }

    /// Runs the LAN for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let flight = self.flights.peek().map(|Reverse(f)| f.at);
            let timer = self.next_timer();
            let next = match (flight, timer) {
                (Some(f), Some((t, _))) => f.min(t),
                (Some(f), None) => f,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if flight == Some(next) {
                let Reverse(f) = self.flights.pop().expect("peeked");
                self.deliver(f);
            } else if let Some((_, i)) = timer {
                let now = self.now;
                self.nodes[i].c_mut().handle_timeout(now);
                let after = self.nodes[i].c().poll_timeout();
                assert!(after.is_none_or(|t| t > now), "a timer of {i} did not move");
                self.drain(i, false);
            }
            self.check_holders();
        }
        self.now = until;
    }

    fn deliver(&mut self, f: Flight) {
        let n = &mut self.nodes[f.to];
        if !n.running() {
            return;
        }
        if n.frozen {
            n.buffered.push((f.from, f.bytes));
            return;
        }
        let now = self.now;
        n.c_mut().handle_datagram(now, f.from, &f.bytes);
        self.drain(f.to, false);
    }

    fn check_holders(&mut self) {
        let ever = self.nodes.iter().any(|n| !n.adds.is_empty());
        let holders = self.owners().len();
        if ever && holders != 1 {
            self.not_one_holder.push((self.now, holders));
        }
    }

    /// Running nodes (frozen ones too) that hold the address.
    pub fn owners(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].running() && self.nodes[i].has_address)
            .collect()
    }

    /// The only owner; panics unless there is exactly one.
    pub fn owner(&self) -> usize {
        let o = self.owners();
        assert_eq!(o.len(), 1, "owners: {:?}", self.names(&o));
        o[0]
    }

    pub fn names(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.nodes[i].name.clone()).collect()
    }

    /// Address changes (adds and removes) by all nodes after `t`.
    pub fn changes_after(&self, t: Instant) -> usize {
        self.nodes
            .iter()
            .map(|n| n.adds.iter().chain(&n.removes).filter(|&&x| x > t).count())
            .sum()
    }

    /// Opens a datagram with the cluster's key, for tests that look inside.
    pub fn open(bytes: &[u8]) -> Option<Message> {
        Sealer::new(CLUSTER, SECRET).open(bytes).ok()
    }

    /// The adverts node `i` multicast so far.
    pub fn adverts_of(&self, i: usize) -> Vec<Vec<u8>> {
        self.nodes[i]
            .sent
            .iter()
            .filter(|d| matches!(Lan::open(d).map(|m| m.body), Some(Body::Advert(_))))
            .cloned()
            .collect()
    }

    /// A settled cluster of nodes named `names` with equal priority: the first founds it, the
    /// others join 100 ms apart once it owns the address, and all run for 3 s.
    pub fn settled(seed: u64, names: &[&str]) -> Lan {
        let mut lan = Lan::new(seed);
        lan.spawn(names[0], 100);
        lan.run_for(Duration::from_secs(1));
        for n in &names[1..] {
            lan.spawn(n, 100);
            lan.run_for(Duration::from_millis(100));
        }
        lan.run_for(Duration::from_secs(3));
        if lan.owners() != [0] {
            lan.dump();
            panic!("owners {:?}", lan.names(&lan.owners()));
        }
        lan
    }

    pub fn ms(&self, t: Instant) -> u128 {
        (t - self.base).as_millis()
    }
}
