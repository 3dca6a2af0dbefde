//! A busway cluster in the namespace lab: one real busway process per member namespace, each
//! with a service listening on the shared address (IP_FREEBIND) and its admin API on its own
//! loopback, reached from a thread inside that namespace.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use busway_test_support::lab::{arp_lag, longest_gap, Lab, PREFIX, SERVICE_IP};
use busway_test_support::proc::busway_bin;
use busway_test_support::{http, Proc, TempDir};
use serde_json::Value;

/// What the gateway's prober asks through the service (which carries it to the member's own
/// admin API), and the start of the answer that proves a live busway served it.
pub const ASK: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n";
pub const ANSWER: &[u8] = b"HTTP/1.1 200";

/// The port the members' service listens on at the service address.
pub const SERVICE_PORT: u16 = 7000;
pub const CLUSTER_SECRET: &str = "lab-cluster-secret-0123456789";

/// Whether the lab can be built here. Where it cannot, says why and the test returns early;
/// under CI that is a failure instead, since CI runs as root and the lab tests are required
/// there.
pub fn available() -> bool {
    match busway_test_support::lab::unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("the cluster lab {why}"),
        Some(why) => {
            eprintln!("skipped: the cluster lab {why}");
            false
        }
    }
}

#[derive(Debug)]
pub struct LanCluster {
    pub lab: Lab,
    pub dir: TempDir,
    /// Member `i` at index `i - 1`; `None` while it is not running.
    pub procs: Vec<Option<Proc>>,
    pub priorities: Vec<u32>,
    pub advert_interval: &'static str,
    /// Without `[cluster]`, the service listening on every address: for comparing with another
    /// program that moves the address (keepalived).
    pub without_cluster: bool,
    /// `lan_balance = true` in every member's `[cluster]`.
    pub lan_balance: bool,
    /// `dead_after` in every member's `[cluster]`.
    pub dead_after: u32,
    /// `backend = "etcd"` with this `lease_ttl`, etcd at the lab's gateway (`LabEtcd`).
    pub etcd_lease: Option<&'static str>,
}

impl LanCluster {
    /// A lab of `priorities.len()` members; none started yet.
    pub fn new(tag: &str, priorities: &[u32]) -> LanCluster {
        LanCluster {
            lab: Lab::new(tag, priorities.len()),
            dir: TempDir::new(&format!("lan-{tag}")),
            procs: priorities.iter().map(|_| None).collect(),
            priorities: priorities.to_vec(),
            advert_interval: "200ms",
            without_cluster: false,
            lan_balance: false,
            dead_after: 3,
            etcd_lease: None,
        }
    }

    pub fn config(&self, i: usize) -> String {
        let ip = Lab::member_ip(i);
        let state = self.state_dir(i);
        let text = format!(
            r#"[node]
name = "m{i}"
state_dir = "{state}"
shutdown_grace = "1s"

[admin]
listen = "tcp://127.0.0.1:9901"

[bus]
listen = ["tcp://{ip}:7100"]
secret = "lab-bus-secret-0123456789"

[cluster]
interface = "eth0"
service_ip = "{SERVICE_IP}/{PREFIX}"
priority = {prio}
advert_interval = "{ai}"
secret = "{CLUSTER_SECRET}"
lan_balance = {lan}
dead_after = {dead}

[[service]]
name = "web"
listen = ["tcp://{SERVICE_IP}:{SERVICE_PORT}"]
backends = ["tcp://127.0.0.1:9901"]
"#,
            state = state.display(),
            prio = self.priorities[i - 1],
            ai = self.advert_interval,
            lan = self.lan_balance,
            dead = self.dead_after,
        );
        if let Some(ttl) = self.etcd_lease {
            let endpoint = busway_test_support::lab_etcd::LabEtcd::endpoint();
            let discovery = format!(
                "backend = \"etcd\"\n\n[discovery]\netcd = [\"{endpoint}\"]\nlease_ttl = \"{ttl}\"\n\n[[service]]"
            );
            return text.replacen("\n[[service]]", &discovery, 1);
        }
        if !self.without_cluster {
            return text;
        }
        let start = text.find("[cluster]").expect("a cluster section");
        let end = text.find("[[service]]").expect("a service");
        let listen = format!("tcp://{SERVICE_IP}:{SERVICE_PORT}");
        format!("{}{}", &text[..start], &text[end..])
            .replace(&listen, &format!("tcp://0.0.0.0:{SERVICE_PORT}"))
    }

    pub fn state_dir(&self, i: usize) -> PathBuf {
        let d = self.dir.path(&format!("m{i}"));
        std::fs::create_dir_all(&d).expect("state dir");
        d
    }

    /// Starts member `i` and waits for its `ready`.
    pub fn start(&mut self, i: usize) {
        let text = self.config(i);
        self.start_with(i, &text);
    }

    /// Starts member `i` from `text` (a variation of [`Self::config`]) and waits for its
    /// `ready`.
    pub fn start_with(&mut self, i: usize, text: &str) {
        let p = self.run_in(&self.lab.member(i), &format!("m{i}.toml"), text);
        self.procs[i - 1] = Some(p);
    }

    /// Runs `busway run` inside namespace `ns` from `text`, written to `file` in the lab's
    /// directory, and waits for its `ready`.
    pub fn run_in(&self, ns: &str, file: &str, text: &str) -> Proc {
        let file = self.dir.write(file, text);
        let bin = busway_bin();
        let args = [
            "netns",
            "exec",
            ns,
            bin.to_str().expect("utf-8 path"),
            "run",
            "-c",
            file.to_str().expect("utf-8 path"),
        ];
        Proc::start_bin(std::path::Path::new("ip"), &args, &[("RUST_LOG", "info")])
    }

    /// Starts every member in order and asserts that member `owner` ends up the sole holder,
    /// named as owner by every member.
    pub fn start_all(&mut self, owner: usize) {
        for i in 1..=self.procs.len() {
            self.start(i);
        }
        assert!(
            self.wait_sole_holder(owner, Duration::from_secs(5)),
            "m{owner} never held the address alone: {:?}",
            self.lab.holders()
        );
        let name = format!("m{owner}");
        for i in 1..=self.procs.len() {
            assert!(
                self.wait_owner_seen(i, &name, Duration::from_secs(3)),
                "m{i}"
            );
        }
    }

    pub fn proc(&self, i: usize) -> &Proc {
        self.procs[i - 1].as_ref().expect("member running")
    }

    /// SIGKILL, reaped.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i - 1].take() {
            p.kill();
        }
    }

    /// `GET PATH` on member `i`'s admin API.
    pub fn admin(&self, i: usize, path: &str) -> http::Answer {
        let path = path.to_string();
        Lab::within(&self.lab.member(i), move || {
            http::get("127.0.0.1:9901", &path)
        })
    }

    pub fn view(&self, i: usize) -> Value {
        let a = self.admin(i, "/v1/cluster");
        assert_eq!(a.status, 200, "{}", a.body);
        serde_json::from_str(&a.body).expect("cluster JSON")
    }

    /// One sample of member `i`'s `/metrics`, by full series name.
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let body = self.admin(i, "/metrics").body;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits up to `limit` until exactly `member` holds the service address.
    pub fn wait_sole_holder(&self, member: usize, limit: Duration) -> bool {
        wait(limit, || self.lab.holders() == [member])
    }

    /// Waits up to `limit` until exactly one member holds the address; that member.
    pub fn wait_one_holder(&self, limit: Duration) -> Option<usize> {
        let mut who = None;
        wait(limit, || {
            let h = self.lab.holders();
            who = (h.len() == 1).then(|| h[0]);
            who.is_some()
        });
        who
    }

    /// Waits until member `i`'s view names `owner` as the owner.
    pub fn wait_owner_seen(&self, i: usize, owner: &str, limit: Duration) -> bool {
        wait(limit, || self.view(i)["owner"] == owner)
    }
}

/// Polls `f` every 20 ms for up to `limit`.
pub fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long clients went unserved after a fault, and how long after the next owner took the
/// address the gateway's ARP entry gave its MAC.
#[derive(Debug)]
pub struct Takeover {
    pub gap: Duration,
    pub arp: Duration,
}

/// Runs `fault` while the gateway probes, and returns the longest time clients were not
/// served after it, once member `next` holds the address and `settle` has passed (waiting up
/// to 5 s for that), with the gateway's ARP lag behind `next`'s takeover.
pub fn gap_after(c: &LanCluster, next: usize, settle: Duration, fault: impl FnOnce()) -> Takeover {
    let prober = c
        .lab
        .probe(SERVICE_PORT, Duration::from_millis(20), ASK, ANSWER);
    let (arp, held, mac) = (c.lab.watch_arp(), c.lab.watch_holder(next), c.lab.mac(next));
    std::thread::sleep(Duration::from_millis(400));
    let at = Instant::now();
    fault();
    // Served again by the next owner: the gap is over.
    wait(Duration::from_secs(5), || {
        c.lab.holds(next) && at.elapsed() > settle
    });
    let log = prober.finish();
    let (arp, held) = (arp.finish(), held.finish());
    assert!(
        log.iter().filter(|(_, ok)| *ok).count() > 10,
        "the prober never connected"
    );
    let gap = longest_gap(&log, at).unwrap_or_else(|| {
        let tail: Vec<(u128, bool)> = log
            .iter()
            .filter(|(t, _)| *t >= at)
            .map(|(t, ok)| (t.duration_since(at).as_millis(), *ok))
            .collect();
        panic!(
            "clients were not served again: holders {:?}, attempts after the fault {tail:?}",
            c.lab.holders()
        )
    });
    let arp = arp_lag(&held, &arp, mac, at).unwrap_or_else(|| {
        panic!("the gateway never followed m{next} ({mac:02x?}): ARP {arp:?}, it held {held:?}")
    });
    Takeover { gap, arp }
}

/// Asserts that exactly one member holds the address at every sample for `d`.
pub fn stays_single(c: &LanCluster, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let h = c.lab.holders();
        assert_eq!(h.len(), 1, "holders {h:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
