//! Discovery end to end (CONTRACT section 6) with a real etcd: nodes register, find each other
//! by labels, and follow nodes that come and go.

mod common;

use std::time::Duration;

use busway_test_support::backends::banner;
use busway_test_support::etcd::Etcd;
use busway_test_support::http;
use busway_test_support::proc::run_to_end;
use common::discovery::{assert_names_within, egress_cfg, greeting, ingress_cfg, names, nodes};
use common::{metric, wait_for, Proc, TempDir};
use serde_json::Value;

const SIGKILL: i32 = 9;

#[test]
fn nodes_register_and_a_label_target_reaches_them() {
    let dir = TempDir::new("disc");
    let etcd = Etcd::start(&dir);
    let b = banner(b"e1");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_cfg(&etcd, "e1", &b.url()));
    let ingress = Proc::run_toml(&dir, "i.toml", &ingress_cfg(&etcd));
    assert_names_within(&ingress, &["e1", "ingress"], Duration::from_secs(5));
    let me: Vec<Value> = nodes(&ingress)
        .into_iter()
        .filter(|n| n["self"] == true)
        .collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["name"], "ingress");
    assert_eq!(greeting(&ingress).as_deref(), Some("e1"));

    // The record as etcd holds it: every field, the real bus port.
    let out = etcd.ctl(&["get", "/it/nodes/default/e1", "--print-value-only"]);
    let rec: Value = serde_json::from_str(out.trim()).unwrap();
    for field in [
        "name",
        "namespace",
        "version",
        "labels",
        "annotations",
        "host",
        "bus",
        "services",
        "gateways",
        "relay",
        "advertise_relay",
    ] {
        assert!(rec.get(field).is_some(), "{field} missing in {rec}");
    }
    assert_eq!(rec["bus"][0], egress.url("bus"));
    assert_eq!(rec["services"][0], "chat");
    assert_eq!(rec["host"]["pid"], egress.pid());

    let admin = ingress.addr("admin");
    assert_eq!(metric(&admin, "busway_discovery_up"), Some(1.0));
    assert_eq!(
        metric(&admin, "busway_discovery_nodes{namespace=\"default\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&admin, "busway_discovery_rejected_total{reason=\"parse\"}"),
        Some(0.0)
    );

    let (code, out, _) = run_to_end(&["nodes", "--admin", &ingress.url("admin")], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("e1") && out.contains("ingress") && out.contains("app=chat"),
        "{out}"
    );
}

#[test]
fn a_killed_node_leaves_every_view_and_sessions_go_elsewhere() {
    let dir = TempDir::new("disc-kill");
    let etcd = Etcd::start(&dir);
    let (b1, b2) = (banner(b"e1"), banner(b"e2"));
    let mut e1 = Proc::run_toml(&dir, "e1.toml", &egress_cfg(&etcd, "e1", &b1.url()));
    let _e2 = Proc::run_toml(&dir, "e2.toml", &egress_cfg(&etcd, "e2", &b2.url()));
    let ingress = Proc::run_toml(&dir, "i.toml", &ingress_cfg(&etcd));
    assert!(wait_for(Duration::from_secs(5), || names(&ingress).len() == 3));
    e1.signal(SIGKILL);
    let _ = e1.wait_exit(Duration::from_secs(2));
    // lease_ttl 2 s (etcd may round a short lease up a little) + 1 s.
    let gone = wait_for(Duration::from_secs(4), || {
        !names(&ingress).contains(&"e1".into())
    });
    assert!(gone, "{:?}", names(&ingress));
    for _ in 0..6 {
        assert_eq!(greeting(&ingress).as_deref(), Some("e2"));
    }
}

#[test]
fn a_clean_stop_removes_the_record_and_a_second_node_of_the_same_name_is_refused() {
    let dir = TempDir::new("disc-dup");
    let etcd = Etcd::start(&dir);
    let b = banner(b"e1");
    let mut first = Proc::run_toml(&dir, "e.toml", &egress_cfg(&etcd, "e1", &b.url()));
    let key = "/it/nodes/default/e1";
    assert!(wait_for(Duration::from_secs(5), || {
        !etcd
            .ctl(&["get", key, "--print-value-only"])
            .trim()
            .is_empty()
    }));
    let again = dir.write("e-again.toml", &egress_cfg(&etcd, "e1", &b.url()));
    let (code, _, err) = run_to_end(&["run", "-c", again.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(key), "{err}");

    first.signal(15);
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());
    assert!(etcd
        .ctl(&["get", key, "--print-value-only"])
        .trim()
        .is_empty());
}

#[test]
fn etcd_away_at_start_is_not_fatal_and_the_node_registers_once_it_answers() {
    let dir = TempDir::new("disc-away");
    let mut etcd = Etcd::start(&dir);
    etcd.kill(0);
    let b = banner(b"e1");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_cfg(&etcd, "e1", &b.url()));
    let admin = egress.addr("admin");
    let ready = http::get(&admin, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("etcd"), "{}", ready.body);
    assert_eq!(metric(&admin, "busway_discovery_up"), Some(0.0));
    etcd.restart(0);
    assert!(etcd.wait_healthy(Duration::from_secs(10)));
    let key = "/it/nodes/default/e1";
    assert!(
        wait_for(Duration::from_secs(6), || {
            !etcd
                .ctl(&["get", key, "--print-value-only"])
                .trim()
                .is_empty()
        }),
        "{}",
        egress.stderr()
    );
    assert!(wait_for(Duration::from_secs(3), || metric(
        &admin,
        "busway_discovery_up"
    ) == Some(1.0)));
    assert!(!http::get(&admin, "/readyz").body.contains("etcd"));
}
