//! `[cluster] backend = "etcd"` in the namespace lab (CONTRACT section 7): real busway processes
//! in member namespaces, a real etcd in the gateway's namespace on 198.18.0.1, and the
//! gateway's prober asking the service address every 20 ms. Root only, like the multicast lab
//! tests; elsewhere they say why and return, under CI they fail.

mod common;

use std::time::{Duration, Instant};

use busway_test_support::lab_etcd::{self, LabEtcd};
use busway_test_support::proc::run_to_end;
use busway_test_support::TempDir;
use common::lan::{available, gap_after, stays_single, wait, LanCluster, Takeover};

/// The smallest lease the configuration allows; etcd in the lab grants it as asked.
const TTL: Duration = Duration::from_secs(1);
/// The contract's bound on a silent owner death with etcd.
const BOUND: Duration = Duration::from_secs(2);
const OWNER_KEY: &str = "/busway/cluster/198.18.0.100/24/owner";
const SIGTERM: i32 = 15;
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

fn etcd_available() -> bool {
    if !available() {
        return false;
    }
    match lab_etcd::unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("the etcd lab {why}"),
        Some(why) => {
            eprintln!("skipped: the etcd lab {why}");
            false
        }
    }
}

/// Three members (priorities 300, 200, 100) electing through etcd; m1 the sole holder on
/// return.
fn three(tag: &str, ttl: &'static str) -> (LanCluster, LabEtcd) {
    let mut c = LanCluster::new(tag, &[300, 200, 100]);
    c.etcd_lease = Some(ttl);
    let etcd = LabEtcd::start(&c.lab, &c.dir);
    c.start_all(1);
    (c, etcd)
}

#[test]
fn exactly_one_owner_among_three_members() {
    if !etcd_available() {
        return;
    }
    let (c, etcd) = three("e1", "1s");
    stays_single(&c, Duration::from_secs(2));
    assert_eq!(c.lab.holders(), [1]);
    let owner = etcd.get(OWNER_KEY).expect("the owner key");
    assert!(owner.contains("\"m1\""), "{owner}");
    let members = etcd.keys("/busway/cluster/198.18.0.100/24/members/");
    assert_eq!(members.len(), 3, "{members:?}");
    for i in 1..=3 {
        let v = c.view(i);
        assert_eq!(v["owner"], "m1");
        assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
        let owner = if i == 1 { 1.0 } else { 0.0 };
        assert_eq!(c.metric(i, "busway_cluster_owner"), Some(owner));
        assert_eq!(c.metric(i, "busway_cluster_members"), Some(3.0));
    }
    assert_eq!(c.metric(1, "busway_cluster_takeovers_total"), Some(1.0));
    assert_eq!(c.metric(2, "busway_cluster_takeovers_total"), Some(0.0));
    let v = c.view(2);
    let m1 = v["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "m1"))
        .expect("m1 listed");
    assert_eq!(m1["role"], "owner");
    assert_eq!(m1["address"], "tcp://198.18.0.11:7100");
}

#[test]
fn kill_9_of_the_owner_moves_the_address_within_the_lease_ttl_and_a_second() {
    if !etcd_available() {
        return;
    }
    let (mut c, _etcd) = three("e9", "1s");
    let mut gaps = Vec::new();
    for round in 1..=3 {
        let Takeover { gap, arp } = gap_after(&c, 2, BOUND + Duration::from_millis(500), || {
            c.proc(1).signal(9)
        });
        // The gratuitous ARP follows the address, whichever backend moved it.
        assert!(
            arp <= Duration::from_millis(100),
            "ARP followed after {arp:?}"
        );
        eprintln!(
            "kill -9 (round {round}): clients unserved for {} ms",
            gap.as_millis()
        );
        gaps.push(gap);
        assert!(gap <= BOUND, "round {round}: gap {gap:?}");
        // Not sooner than etcd could have expired the lease: it was the lease that moved it.
        assert!(gap >= TTL / 2, "round {round}: gap {gap:?}");
        assert!(c.lab.holds(2), "m2 ranks next");
        assert!(!c.lab.holds(3));
        assert!(c.wait_owner_seen(3, "m2", Duration::from_secs(1)));
        assert!(wait(Duration::from_secs(2), || c
            .metric(3, "busway_cluster_members")
            == Some(2.0)));
        assert_eq!(c.metric(2, "busway_cluster_owner"), Some(1.0));
        assert_eq!(
            c.metric(2, "busway_cluster_takeovers_total"),
            Some(f64::from(round))
        );
        // m1 comes back with the higher priority: m2 resigns and m1 takes it.
        c.kill(1);
        c.start(1);
        assert!(
            c.wait_sole_holder(1, Duration::from_secs(3)),
            "m1 back: {:?}",
            c.lab.holders()
        );
        assert!(c.wait_owner_seen(2, "m1", Duration::from_secs(2)));
    }
    eprintln!("kill -9 gaps: {gaps:?}");
}

#[test]
fn a_frozen_owner_loses_the_address_and_gives_it_up_when_it_wakes() {
    if !etcd_available() {
        return;
    }
    let (c, _etcd) = three("es", "1s");
    let Takeover { gap, arp } = gap_after(&c, 2, BOUND + Duration::from_millis(500), || {
        c.proc(1).signal(SIGSTOP)
    });
    // The gratuitous ARP follows the address, whichever backend moved it.
    assert!(
        arp <= Duration::from_millis(100),
        "ARP followed after {arp:?}"
    );
    eprintln!("SIGSTOP: clients unserved for {} ms", gap.as_millis());
    assert!(gap <= BOUND, "gap {gap:?}");
    assert!(c.wait_owner_seen(3, "m2", Duration::from_secs(1)));
    c.proc(1).signal(SIGCONT);
    // It wakes past its lease: it drops what the kernel left it, and m1 (priority 300)
    // registers anew and takes the address back from m2.
    assert!(
        c.wait_sole_holder(1, Duration::from_secs(5)),
        "after SIGCONT: {:?}",
        c.lab.holders()
    );
    stays_single(&c, Duration::from_secs(1));
    for i in 1..=3 {
        assert!(c.wait_owner_seen(i, "m1", Duration::from_secs(3)), "m{i}");
    }
}

#[test]
fn a_clean_stop_hands_over_without_waiting_for_the_lease() {
    if !etcd_available() {
        return;
    }
    // A long lease: a handover that waited for it would take 5 s.
    let (c, etcd) = three("ec", "5s");
    let Takeover { gap, arp } =
        gap_after(&c, 2, Duration::from_secs(1), || c.proc(1).signal(SIGTERM));
    // The gratuitous ARP follows the address, whichever backend moved it.
    assert!(
        arp <= Duration::from_millis(100),
        "ARP followed after {arp:?}"
    );
    eprintln!("clean stop: clients unserved for {} ms", gap.as_millis());
    assert!(gap < Duration::from_millis(800), "gap {gap:?}");
    assert_eq!(c.lab.holders(), [2]);
    let owner = etcd.get(OWNER_KEY).expect("the owner key");
    assert!(owner.contains("\"m2\""), "{owner}");
    assert!(c.wait_owner_seen(3, "m2", Duration::from_secs(1)));
    assert_eq!(
        etcd.keys("/busway/cluster/198.18.0.100/24/members/").len(),
        2,
        "m1's record went with its lease"
    );
}

#[test]
fn with_etcd_away_the_owner_drops_the_address_before_its_lease_can_expire() {
    if !etcd_available() {
        return;
    }
    let (c, mut etcd) = three("ea", "1s");
    let killed = Instant::now();
    etcd.kill();
    // Its last keepalive was sent before the kill, so etcd could expire the lease from
    // `killed + TTL` on at the earliest: the address must be gone before.
    assert!(
        wait(TTL, || c.lab.holders().is_empty()),
        "still held {:?} after {:?}",
        c.lab.holders(),
        killed.elapsed()
    );
    let gone = killed.elapsed();
    eprintln!(
        "etcd away: the owner dropped the address after {} ms",
        gone.as_millis()
    );
    assert!(gone < TTL, "{gone:?}");
    // Nobody can take it while etcd is away.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(c.lab.holders(), Vec::<usize>::new());
    // etcd back: exactly one owner again, the best-ranked, named by every member.
    etcd.restart();
    assert!(
        c.wait_sole_holder(1, Duration::from_secs(8)),
        "after etcd came back: {:?}",
        c.lab.holders()
    );
    stays_single(&c, Duration::from_secs(1));
    for i in 1..=3 {
        assert!(c.wait_owner_seen(i, "m1", Duration::from_secs(3)), "m{i}");
    }
}

#[test]
fn the_etcd_backend_without_discovery_is_a_config_error() {
    let dir = TempDir::new("cluster-etcd-check");
    let text = "[node]\nname = \"m1\"\n\n[cluster]\ninterface = \"eth0\"\nservice_ip = \"198.18.0.100/24\"\nsecret = \"lab-cluster-secret-0123456789\"\nbackend = \"etcd\"\n";
    let file = dir.write("etcd.toml", text);
    let path = file.to_str().expect("utf-8 path");
    for cmd in ["check", "run"] {
        let (code, _, err) = run_to_end(&[cmd, "-c", path], &[]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains(&format!("{path}:8")), "{cmd}: {err}");
        assert!(err.contains("cluster.backend"), "{cmd}: {err}");
        assert!(err.contains("[discovery]"), "{cmd}: {err}");
    }
    // With [discovery] it is accepted.
    let ok = dir.write(
        "etcd-ok.toml",
        &format!("{text}\n[discovery]\netcd = \"http://198.18.0.1:2379\"\nlease_ttl = \"1s\"\n"),
    );
    let (code, _, err) = run_to_end(&["check", "-c", ok.to_str().expect("utf-8")], &[]);
    assert_eq!(code, 0, "{err}");
}
