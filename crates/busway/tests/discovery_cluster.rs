//! Discovery against a 3-member etcd cluster that loses a member (issue 13): the nodes are real
//! busway processes given all three endpoints, as `[discovery] etcd = [...]` allows.

mod common;

use std::time::{Duration, Instant};

use busway_test_support::backends::banner;
use busway_test_support::etcd::Etcd;
use busway_test_support::sockets::established_peer_ports;
use common::discovery::{assert_names_within, discovery_at, egress_with, greeting, ingress_with};
use common::{metric, wait_for, Proc, TempDir};
use serde_json::Value;

const SIGTERM: i32 = 15;
/// The lease: CONTRACT 6 asks for at least 5 s where etcd elections happen, and killing the
/// leader starts one.
const TTL: Duration = Duration::from_secs(5);

/// `KEY`'s (create revision, lease) as the running members answer, if it is there. The create
/// revision only changes if the key was deleted and written again, so the same one before and
/// after the loss means the record never left.
fn held(etcd: &Etcd, key: &str) -> Option<(i64, i64)> {
    let (ok, out, _) = etcd.etcdctl_running(&["get", key, "-w", "json"]);
    if !ok {
        return None;
    }
    let v: Value = serde_json::from_str(&out).ok()?;
    let kv = v["kvs"].as_array()?.first()?;
    Some((kv["create_revision"].as_i64()?, kv["lease"].as_i64()?))
}

fn key(name: &str) -> String {
    format!("/it/nodes/default/{name}")
}

/// Every node starts on the first endpoint; killing that member makes each move to a
/// survivor. They stay registered through it (same record, same lease, past the TTL), label
/// routing keeps working, and a node joining or leaving afterwards is seen.
#[test]
fn a_three_member_cluster_losing_the_member_in_use() {
    let dir = TempDir::new("disc-cluster");
    let mut etcd = Etcd::cluster(&dir, 3);
    let disc = discovery_at(&etcd.endpoints(), "5s");
    let b1 = banner(b"e1");
    let mut e1 = Proc::run_toml(&dir, "e1.toml", &egress_with(&disc, "e1", &b1.url()));
    let ingress = Proc::run_toml(&dir, "i.toml", &ingress_with(&disc));
    assert_names_within(&ingress, &["e1", "ingress"], Duration::from_secs(5));
    assert_eq!(greeting(&ingress).as_deref(), Some("e1"));

    // The member in use is the first endpoint: the nodes are connected to it.
    let first = etcd.client_port(0);
    for p in [&e1, &ingress] {
        assert!(
            wait_for(Duration::from_secs(3), || established_peer_ports(p.pid())
                .contains(&first)),
            "pid {} is not connected to etcd member 0 (port {first}): {:?}",
            p.pid(),
            established_peer_ports(p.pid())
        );
    }
    let before = [held(&etcd, &key("e1")), held(&etcd, &key("ingress"))];
    assert!(before.iter().all(Option::is_some), "{before:?}");

    etcd.kill(0);
    let lost = Instant::now();
    let survivors = [etcd.client_port(1), etcd.client_port(2)];
    for p in [&e1, &ingress] {
        let moved = wait_for(Duration::from_secs(10), || {
            let ports = established_peer_ports(p.pid());
            !ports.contains(&first)
                && ports.iter().any(|x| survivors.contains(x))
                && metric(&p.addr("admin"), "busway_discovery_up") == Some(1.0)
        });
        assert!(
            moved,
            "pid {} did not move to a survivor: {:?}\n{}",
            p.pid(),
            established_peer_ports(p.pid()),
            p.stderr()
        );
    }

    // Past the lease's TTL from the loss, both records are the ones written before it: their
    // keepalives reach a survivor.
    std::thread::sleep(
        (lost + TTL + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    );
    let after = [held(&etcd, &key("e1")), held(&etcd, &key("ingress"))];
    assert_eq!(
        after, before,
        "records lost or rewritten after the member's loss"
    );
    assert_eq!(greeting(&ingress).as_deref(), Some("e1"));

    // A node joining after the loss (the dead member still first in its list) is seen, and
    // is routed to once e1 leaves cleanly.
    let b2 = banner(b"e2");
    let _e2 = Proc::run_toml(&dir, "e2.toml", &egress_with(&disc, "e2", &b2.url()));
    assert_names_within(&ingress, &["e1", "e2", "ingress"], Duration::from_secs(5));
    assert!(held(&etcd, &key("e2")).is_some());
    e1.signal(SIGTERM);
    assert!(e1.wait_exit(Duration::from_secs(10)).is_some());
    assert_names_within(&ingress, &["e2", "ingress"], Duration::from_secs(3));
    for _ in 0..4 {
        assert_eq!(greeting(&ingress).as_deref(), Some("e2"));
    }
}
