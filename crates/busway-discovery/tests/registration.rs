//! Registration against a real etcd: what is written, when it is refused, when it is replaced,
//! and that it is gone after a clean shutdown.

mod common;

use std::time::Duration;

use busway_discovery::{record_key, Discovery, StartError};
use busway_test_support::etcd::Etcd;
use busway_test_support::TempDir;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_has_every_field_under_a_lease() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let mut r = record("n1");
        r.annotations.insert("owner".into(), "team-a".into());
        r.gateways.push(busway_discovery::Gateway {
            address: "tcp://203.0.113.5:7100".into(),
            priority: 10,
            r#match: [("namespace".to_string(), "edge".to_string())].into(),
        });
        r.relay = true;
        r.advertise_relay = Some(busway_discovery::AdvertiseRelay {
            labels: [("role".to_string(), "relay".to_string())].into(),
            name: None,
        });
        let d = Discovery::start(settings(etcd.endpoints(), 10), r)
            .await
            .expect("start");
        assert!(d.up(), "{:?}", d.last_error());
        assert_eq!(d.last_error(), None);
        let kvs = get_json(&etcd, PREFIX);
        assert_eq!(kvs.len(), 1, "{kvs:?}");
        let (key, v, lease) = &kvs[0];
        assert_eq!(key, "/busway/nodes/default/n1");
        assert_eq!(d.key(), key);
        assert_ne!(*lease, 0, "the record is bound to a lease");
        let host = busway_discovery::Host::this_process();
        assert_eq!(
            *v,
            json!({
                "name": "n1",
                "namespace": "default",
                "version": "0.1.0",
                "labels": {"app": "chat"},
                "annotations": {"owner": "team-a"},
                "host": {"hostname": host.hostname, "pid": host.pid},
                "bus": ["tcp://127.0.0.1:7100"],
                "services": ["chat"],
                "gateways": [{"address": "tcp://203.0.113.5:7100", "priority": 10, "match": {"namespace": "edge"}}],
                "relay": true,
                "advertise_relay": {"labels": {"role": "relay"}}
            })
        );
        // The lease is etcd's, with the TTL asked for, and only this key on it.
        let ttl = etcd.ctl(&["lease", "timetolive", &format!("{lease:x}"), "--keys"]);
        assert!(ttl.contains("granted with TTL(10s)"), "{ttl}");
        assert!(ttl.contains("/busway/nodes/default/n1"), "{ttl}");
        // The own record is in the view.
        assert_eq!(names(&d), ["n1"]);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_fields_are_written_as_empty_and_null() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let mut r = record("bare");
        r.labels.clear();
        r.services.clear();
        r.bus.clear();
        let d = Discovery::start(settings(etcd.endpoints(), 10), r)
            .await
            .expect("start");
        let (_, v, _) = get_json(&etcd, PREFIX).remove(0);
        for (field, empty) in [
            ("labels", json!({})),
            ("annotations", json!({})),
            ("bus", json!([])),
            ("services", json!([])),
            ("gateways", json!([])),
            ("relay", json!(false)),
            ("advertise_relay", json!(null)),
        ] {
            assert_eq!(v.get(field), Some(&empty), "{field} in {v}");
        }
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_deletes_the_record_and_revokes_the_lease() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let d = start(&etcd, "n1").await;
        assert_eq!(get_json(&etcd, PREFIX).len(), 1);
        let t = std::time::Instant::now();
        d.shutdown().await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(get_json(&etcd, PREFIX), vec![]);
        let leases = etcd.ctl(&["lease", "list"]);
        assert!(leases.contains("found 0 leases"), "{leases}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_record_of_another_process_refuses_start_naming_the_key() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let key = record_key(PREFIX, "default", "n1");
        // Another host's record: its pid cannot be checked from here, so it is live.
        let mut other = record("n1");
        other.host.hostname = "elsewhere".into();
        other.host.pid = 1234;
        let value = String::from_utf8(other.to_json()).unwrap();
        etcd.put(&key, &value);
        let err = Discovery::start(settings(etcd.endpoints(), 10), record("n1"))
            .await
            .expect_err("must refuse");
        assert_eq!(
            err,
            StartError::Conflict {
                key: key.clone(),
                holder: "elsewhere:1234".into()
            }
        );
        assert!(err.to_string().contains(&key), "{err}");
        // Untouched, and the refused node left no lease behind.
        assert_eq!(get_json(&etcd, PREFIX)[0].1["host"]["hostname"], "elsewhere");
        let leases = etcd.ctl(&["lease", "list"]);
        assert!(leases.contains("found 0 leases"), "{leases}");

        // This host, a pid that runs (etcd's own): live too.
        let pid = etcd.pid(0).unwrap();
        let mut here = record("n1");
        here.host.pid = pid;
        etcd.put(&key, &String::from_utf8(here.to_json()).unwrap());
        let err = Discovery::start(settings(etcd.endpoints(), 10), record("n1"))
            .await
            .expect_err("must refuse");
        assert!(
            matches!(&err, StartError::Conflict { holder, .. } if holder.ends_with(&format!(":{pid}"))),
            "{err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_discovery_of_the_same_name_is_refused() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let first = start(&etcd, "dup").await;
        let err = Discovery::start(settings(etcd.endpoints(), 10), record("dup"))
            .await
            .expect_err("a duplicate name must be refused");
        assert!(matches!(err, StartError::Conflict { .. }), "{err}");
        // The first one's registration is untouched.
        assert!(first.up());
        assert_eq!(get_json(&etcd, PREFIX).len(), 1);
        first.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_record_of_this_host_with_a_dead_pid_is_replaced() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        // A pid that has run and exited (reaped): not running.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let key = record_key(PREFIX, "default", "n1");
        let mut stale = record("n1");
        stale.host.pid = dead;
        stale.labels.insert("old".into(), "yes".into());
        etcd.put(&key, &String::from_utf8(stale.to_json()).unwrap());
        let d = start(&etcd, "n1").await;
        assert!(d.up(), "{:?}", d.last_error());
        let (_, v, lease) = get_json(&etcd, PREFIX).remove(0);
        assert_eq!(v["host"]["pid"], std::process::id());
        assert_eq!(v["labels"].get("old"), None);
        assert_ne!(lease, 0);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_record_rewrites_under_the_same_lease() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let d = start(&etcd, "n1").await;
        let (_, _, lease) = get_json(&etcd, PREFIX).remove(0);
        let mut r = record("n1");
        r.labels.insert("version".into(), "2".into());
        d.set_record(r.clone());
        let rewritten = within(Duration::from_secs(2), || {
            get_json(&etcd, PREFIX)[0].1["labels"]["version"] == "2"
        })
        .await;
        assert!(rewritten.is_some());
        assert_eq!(get_json(&etcd, PREFIX)[0].2, lease);
        assert_eq!(*d.view().borrow().nodes[d.key()], r);
        // Another name is another key: refused, the record stays.
        d.set_record(record("renamed"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get_json(&etcd, PREFIX).len(), 1);
        assert_eq!(*d.view().borrow().nodes[d.key()], r);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_are_tried_in_turn() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let etcd = Etcd::start(&dir);
        let dead = format!("http://{}", busway_test_support::backends::closed_port());
        let d = Discovery::start(settings(vec![dead, etcd.endpoint()], 10), record("n1"))
            .await
            .expect("start");
        assert!(d.up(), "{:?}", d.last_error());
        assert_eq!(get_json(&etcd, PREFIX).len(), 1);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_at_start_is_not_fatal_and_registration_follows() {
    bounded(async {
        let dir = TempDir::new("disc-reg");
        let mut etcd = Etcd::start(&dir);
        etcd.kill(0);
        let t = std::time::Instant::now();
        let d = start(&etcd, "n1").await;
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "start waited {:?}",
            t.elapsed()
        );
        assert!(!d.up());
        let e = d.last_error().expect("names etcd");
        assert!(e.contains(&etcd.endpoint()), "{e}");
        assert!(e.contains("connection refused"), "{e}");
        assert_eq!(names(&d), ["n1"]);
        etcd.restart(0);
        assert!(etcd.wait_healthy(Duration::from_secs(20)));
        let t = within(Duration::from_secs(5), || d.up()).await;
        assert!(t.is_some(), "not up within 5 s: {:?}", d.last_error());
        assert_eq!(get_json(&etcd, PREFIX).len(), 1);
        d.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_records_that_cannot_work_are_refused_at_once() {
    let mut s = settings(vec!["https://127.0.0.1:2379".into()], 10);
    assert!(matches!(
        Discovery::start(s.clone(), record("n1")).await,
        Err(StartError::Settings(_))
    ));
    s.endpoints = vec!["http://127.0.0.1:9".into()];
    let mut r = record("n1");
    r.bus = vec!["http://127.0.0.1:7100".into()];
    assert!(matches!(
        Discovery::start(s, r).await,
        Err(StartError::Record(busway_discovery::Rejected::Address(_)))
    ));
}
