//! A LAN in network namespaces, for the cluster's scenario tests and benchmark (CONTRACT
//! section 7): one bridge in its own namespace, N member namespaces and a gateway namespace,
//! each joined to the bridge by a veth pair, addresses from 198.18.0.0/15 only.
//!
//! ```text
//!   gw (198.18.0.1) ─┐
//!   m1 (198.18.0.11) ─┤ br0, in its own namespace, multicast snooping off
//!   m2 (198.18.0.12) ─┤
//!   …                ─┘           service address 198.18.0.100/24
//! ```
//!
//! Faults: [`Lab::link`] sets a member's own end down or up; [`Lab::isolate`] puts a blackhole
//! qdisc on both ends of its veth (a partition); [`Lab::lossy`] drops a share of every frame
//! both ways (an HTB root whose classifier, a classic BPF program reading the kernel's random
//! number, sends that share to a blackhole leaf: the kernel here has no netem). Processes are
//! started with `ip netns exec`, which execs in place, so their pids are busway's own.
//!
//! A lab is torn down by name when dropped (every namespace deleted, which deletes its veths),
//! and any lab left by a crashed run with the same tag is removed before a new one is built.
//! Labs are built one at a time ([`Lab::new`] holds a process-wide lock for the lab's life,
//! and `.config/nextest.toml` puts the lab's test binaries in a group of one thread, since
//! nextest runs each test in its own process): the timings measured in them must not share two
//! cores with another lab's.

mod watch;

pub use watch::{arp_entry, arp_lag, Mac, Timeline};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The gateway's address; members are `MEMBER_BASE + i` (1-based).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const MEMBER_BASE: u8 = 10;
/// The shared service address of the lab's cluster.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const PREFIX: u8 = 24;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Why the lab cannot be built here, or `None` when it can (root with CAP_NET_ADMIN, `ip`
/// and `tc` present).
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    if eff & (1 << 12) == 0 || eff & (1 << 21) == 0 {
        return Some("needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN (network namespaces)".into());
    }
    for tool in ["ip", "tc"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("needs the `{tool}` command (iproute2)"));
        }
    }
    None
}

#[derive(Debug)]
pub struct Lab {
    tag: String,
    members: usize,
    _lock: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds a lab of `members` members; `tag` (a few letters) names its namespaces.
    pub fn new(tag: &str, members: usize) -> Lab {
        let lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let lab = Lab {
            tag: tag.to_string(),
            members,
            _lock: lock,
        };
        lab.teardown();
        lab.build();
        lab
    }

    /// The namespace of member `i` (1-based).
    pub fn member(&self, i: usize) -> String {
        format!("bw{}-m{i}", self.tag)
    }

    pub fn gateway(&self) -> String {
        format!("bw{}-gw", self.tag)
    }

    fn bridge(&self) -> String {
        format!("bw{}-br", self.tag)
    }

    /// Member `i`'s own address.
    pub fn member_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, MEMBER_BASE + i as u8)
    }

    pub fn members(&self) -> usize {
        self.members
    }

    fn all(&self) -> Vec<String> {
        let mut v = vec![self.bridge(), self.gateway()];
        v.extend((1..=self.members).map(|i| self.member(i)));
        v
    }

    fn build(&self) {
        let br = self.bridge();
        for ns in self.all() {
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        let mut hosts = vec![(self.gateway(), "gw".to_string(), GATEWAY)];
        hosts.extend(
            (1..=self.members).map(|i| (self.member(i), format!("m{i}"), Lab::member_ip(i))),
        );
        for (ns, port, addr) in hosts {
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &br,
            ]);
            ip(&[
                "-n", &br, "link", "set", "dev", &port, "master", "br0", "up",
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/{PREFIX}"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
    }

    /// Deletes every namespace of this tag (those of an earlier, crashed run too).
    pub fn teardown(&self) {
        let listed = Command::new("ip").args(["netns", "list"]).output();
        let text = listed
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let prefix = format!("bw{}-", self.tag);
        for name in text.lines().filter_map(|l| l.split_whitespace().next()) {
            if name.starts_with(&prefix) {
                let _ = Command::new("ip").args(["netns", "del", name]).output();
            }
        }
    }

    /// `ip netns exec NS ARGS…`, to completion.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        Command::new("ip")
            .args(&all)
            .output()
            .expect("ip netns exec")
    }

    /// Sets member `i`'s own end of its link up or down (`ip link set eth0 up|down`).
    pub fn link(&self, i: usize, up: bool) {
        ip(&[
            "-n",
            &self.member(i),
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }

    /// Both ends of member `i`'s veth: its `eth0`, and its port on the bridge.
    fn ends(&self, i: usize) -> [(String, String); 2] {
        [
            (self.member(i), "eth0".into()),
            (self.bridge(), format!("m{i}")),
        ]
    }

    /// Cuts member `i` off (every frame either way dropped) while its link stays up.
    pub fn isolate(&self, i: usize) {
        for (ns, dev) in self.ends(i) {
            tc(&[
                "-n",
                &ns,
                "qdisc",
                "replace",
                "dev",
                &dev,
                "root",
                "blackhole",
            ]);
        }
    }

    /// Drops about `percent` % of member `i`'s frames each way (0 removes the loss).
    pub fn lossy(&self, i: usize, percent: f64) {
        self.heal(i);
        if percent <= 0.0 {
            return;
        }
        for (ns, dev) in self.ends(i) {
            for args in loss_qdisc(&ns, &dev, percent) {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                tc(&a);
            }
        }
    }

    /// Removes whatever [`Lab::isolate`] or [`Lab::lossy`] put on member `i`'s link.
    pub fn heal(&self, i: usize) {
        for (ns, dev) in self.ends(i) {
            let _ = Command::new("tc")
                .args(["-n", &ns, "qdisc", "del", "dev", &dev, "root"])
                .output();
        }
    }

    /// Whether member `i` holds the service address now.
    pub fn holds(&self, i: usize) -> bool {
        let o = Command::new("ip")
            .args([
                "-n",
                &self.member(i),
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .output()
            .expect("ip addr show");
        String::from_utf8_lossy(&o.stdout).contains(&format!(" {SERVICE_IP}/"))
    }

    /// The members holding the service address now.
    pub fn holders(&self) -> Vec<usize> {
        (1..=self.members).filter(|i| self.holds(*i)).collect()
    }

    /// Runs `f` on a thread inside namespace `ns` (for sockets opened there).
    pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("thread in namespace")
    }

    /// Starts a thread in the gateway's namespace that, every `every` until it is stopped,
    /// connects to `SERVICE_IP:port`, sends `ask` and expects an answer that starts with
    /// `expect`, within [`attempt_budget`]. A bare connect would not do: the kernel of a frozen
    /// (SIGSTOP) owner still completes handshakes for its listener.
    pub fn probe(
        &self,
        port: u16,
        every: Duration,
        ask: &'static [u8],
        expect: &'static [u8],
    ) -> Prober {
        let path = format!("/run/netns/{}", self.gateway());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            enter(&path);
            let to = SocketAddr::from((SERVICE_IP, port));
            let mut log = Vec::new();
            let start = Instant::now();
            let mut next = start;
            // Bounded by the stop flag and, in any case, ten minutes.
            while !s.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(600)
            {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                let t = Instant::now();
                let ok = exchange(&to, ask, expect);
                log.push((t, ok));
                next = t + every;
            }
            log
        });
        Prober {
            stop,
            handle: Some(handle),
        }
    }
}

/// The budget of one probe (connect, ask, answer), 100 ms unless `LAB_PROBE_BUDGET_MS` says
/// otherwise. It is the prober's resolution: an attempt sent to a silent owner costs all of it,
/// so no gap measures below it plus one interval. Shorter resolves the tightest settings
/// better, and risks failing attempts that were only slow.
pub fn attempt_budget() -> Duration {
    let ms = std::env::var("LAB_PROBE_BUDGET_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ms)
}

fn exchange(to: &SocketAddr, ask: &[u8], expect: &[u8]) -> bool {
    let budget = attempt_budget();
    let start = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(to, budget) else {
        return false;
    };
    let left = budget
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    if s.set_read_timeout(Some(left)).is_err() || s.write_all(ask).is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // Bounded by the read timeout and by `expect`'s length.
    while got.len() < expect.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if start.elapsed() > budget {
            break;
        }
    }
    got.starts_with(expect)
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Moves this thread into the network namespace at `path`.
fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// The `tc` commands that drop `percent` % of what leaves `dev`: an HTB root whose default
/// class passes everything, and a classifier that sends a random share to a blackhole leaf.
///
/// The classifier is a classic BPF program: `ld rand` (the kernel's per-packet random
/// number), then "below the threshold: the filter's class (-1), else no match (0)".
pub fn loss_qdisc(ns: &str, dev: &str, percent: f64) -> Vec<Vec<String>> {
    let threshold = ((percent / 100.0) * 4_294_967_296.0).min(4_294_967_295.0) as u64;
    // SKF_AD_OFF (-4096) + SKF_AD_RANDOM (56), as an unsigned 32-bit offset.
    let rand = (-4096i64 + 56) as u32;
    let bytecode = format!("4,32 0 0 {rand},53 1 0 {threshold},6 0 0 4294967295,6 0 0 0");
    let base = ["-n", ns];
    let cmds: Vec<Vec<&str>> = vec![
        vec![
            "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1",
        ],
        vec![
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
        ],
        vec![
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit",
        ],
        vec![
            "qdisc",
            "add",
            "dev",
            dev,
            "parent",
            "1:2",
            "handle",
            "2:",
            "blackhole",
        ],
        vec![
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "all", "prio", "1", "bpf",
            "bytecode", &bytecode, "classid", "1:2",
        ],
    ];
    cmds.into_iter()
        .map(|c| base.iter().chain(c.iter()).map(|s| s.to_string()).collect())
        .collect()
}

/// TCP connects to the service address from the gateway, every 20 ms or so.
#[derive(Debug)]
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(Instant, bool)>>>,
}

impl Prober {
    /// Stops probing; every attempt's start and whether it connected.
    pub fn finish(mut self) -> Vec<(Instant, bool)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The longest time without a successful connect among the outages that began at or after
/// `from`: from the last success before an outage's first failure (or that failure, if
/// nothing succeeded before it) to the next success. Zero when nothing failed after `from`
/// (the outage, if any, fell between two attempts); `None` when the last outage never ended.
pub fn longest_gap(log: &[(Instant, bool)], from: Instant) -> Option<Duration> {
    let mut last_ok: Option<Instant> = None;
    let mut outage: Option<Instant> = None;
    let mut best: Option<Duration> = None;
    for &(t, ok) in log {
        match (ok, outage) {
            (true, Some(began)) => {
                let g = t.duration_since(began);
                best = Some(best.map_or(g, |b| b.max(g)));
                outage = None;
                last_ok = Some(t);
            }
            (true, None) => last_ok = Some(t),
            (false, None) if t >= from => outage = Some(last_ok.unwrap_or(t)),
            (false, _) => {}
        }
    }
    match outage {
        Some(_) => None,
        None => Some(best.unwrap_or(Duration::ZERO)),
    }
}

fn ip(args: &[&str]) {
    run("ip", args);
}

fn tc(args: &[&str]) {
    run("tc", args);
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_run_from_the_last_success_to_the_next() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let log = [
            (at(0), true),
            (at(20), true),
            (at(40), false),
            (at(60), false),
            (at(300), true),
            (at(320), false),
            (at(340), true),
        ];
        assert_eq!(longest_gap(&log, at(30)), Some(Duration::from_millis(280)));
        // The failure at 320 ms began after the success at 300 ms and ended at 340 ms.
        assert_eq!(longest_gap(&log, at(310)), Some(Duration::from_millis(40)));
        assert_eq!(longest_gap(&log[..4], at(30)), None, "never recovered");
        assert_eq!(
            longest_gap(&log[..2], at(0)),
            Some(Duration::ZERO),
            "nothing failed"
        );
    }

    #[test]
    fn the_loss_filter_drops_its_share() {
        let cmds = loss_qdisc("ns", "eth0", 5.0);
        let filter = cmds.last().unwrap().join(" ");
        // 5 % of 2^32.
        assert!(filter.contains(",53 1 0 214748364,"), "{filter}");
        assert!(filter.contains("32 0 0 4294963256"), "ld rand: {filter}");
    }
}
