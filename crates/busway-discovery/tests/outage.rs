//! etcd going away while nodes run: the view is kept, `up` says so, and within 5 s of etcd
//! answering again every node is registered and watching.

mod common;

use std::time::{Duration, Instant};

use busway_discovery::Discovery;
use busway_test_support::etcd::Etcd;
use busway_test_support::TempDir;
use common::*;

const SECOND: Duration = Duration::from_secs(1);
const BACK: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_and_restarted() {
    bounded(async {
        let dir = TempDir::new("disc-out");
        let mut etcd = Etcd::start(&dir);
        let a = start(&etcd, "a").await;
        let b = start(&etcd, "b").await;
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        etcd.kill(0);
        assert!(within(Duration::from_secs(5), || !a.up() && !b.up())
            .await
            .is_some());
        let e = a.last_error().expect("says why");
        assert!(e.contains(&etcd.endpoint()), "{e}");
        // The last view is kept.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(names(&a), ["a", "b"]);
        etcd.restart(0);
        assert!(etcd.wait_healthy(Duration::from_secs(20)));
        let answering = Instant::now();
        assert!(
            within(BACK, || a.up() && b.up()).await.is_some(),
            "{:?}",
            a.last_error()
        );
        assert!(answering.elapsed() <= BACK);
        assert_eq!(a.last_error(), None);
        assert_eq!(get_json(&etcd, PREFIX).len(), 2);
        // Watching again: a change is seen.
        b.shutdown().await;
        assert!(within(SECOND, || names(&a) == ["a"]).await.is_some());
        a.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_that_comes_back_empty_gets_every_record_again() {
    bounded(async {
        let dir = TempDir::new("disc-out");
        let mut etcd = Etcd::start(&dir);
        let a = start(&etcd, "a").await;
        let b = start(&etcd, "b").await;
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        // Churn so the view's revision is well past a new cluster's.
        for i in 0..10 {
            let mut r = record("b");
            r.labels.insert("gen".into(), i.to_string());
            b.set_record(r);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut updates = a.updates();
        etcd.restart_empty();
        assert!(etcd.wait_healthy(Duration::from_secs(20)));
        let answering = Instant::now();
        let both = within(BACK, || {
            get_json(&etcd, PREFIX).len() == 2 && a.up() && b.up()
        })
        .await;
        assert!(
            both.is_some(),
            "{:?} {:?}",
            a.last_error(),
            get_json(&etcd, PREFIX)
        );
        assert!(answering.elapsed() <= BACK + Duration::from_millis(500));
        // New leases, and a fresh snapshot: the old revisions mean nothing here.
        assert!(get_json(&etcd, PREFIX).iter().all(|(_, _, l)| *l != 0));
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        assert!(drain(&mut updates)
            .iter()
            .any(|u| matches!(u, busway_discovery::Update::Reset(_))));
        b.shutdown().await;
        assert!(within(SECOND, || names(&a) == ["a"]).await.is_some());
        a.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_losing_the_member_in_use() {
    bounded(async {
        let dir = TempDir::new("disc-out");
        let mut etcd = Etcd::cluster(&dir, 3);
        // Both start on member 0, the first endpoint.
        let a = Discovery::start(settings(etcd.endpoints(), 5), record("a"))
            .await
            .expect("start a");
        let b = Discovery::start(settings(etcd.endpoints(), 5), record("b"))
            .await
            .expect("start b");
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        etcd.kill(0);
        let lost = Instant::now();
        // They move to another member, stay registered and keep watching.
        let moved = within(Duration::from_secs(10), || {
            a.up()
                && b.up()
                && etcd
                    .etcdctl(&["get", "--prefix", PREFIX, "--keys-only"])
                    .1
                    .lines()
                    .filter(|l| !l.is_empty())
                    .count()
                    == 2
        })
        .await;
        assert!(moved.is_some(), "{:?} {:?}", a.last_error(), b.last_error());
        b.shutdown().await;
        assert!(within(SECOND, || names(&a) == ["a"]).await.is_some());
        // Still registered well past the lease's TTL: the keepalives go to the new member.
        while lost.elapsed() < Duration::from_secs(7) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(a.up());
        let keys = etcd.ctl(&["get", "--prefix", PREFIX, "--keys-only"]);
        assert!(keys.contains("/busway/nodes/default/a"), "{keys}");
        a.shutdown().await;
    })
    .await;
}

/// etcd closes a connection that pings it more often than its `--grpc-keepalive-min-time`
/// (5 s by default) while it sends nothing back ("too many pings"). With a long lease the
/// keepalive answers are rare, so only the node's pings decide: they must respect that floor,
/// or the node drops off every few seconds and `busway_discovery_up` flaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lease_keeps_its_connection() {
    bounded(async {
        let dir = TempDir::new("disc-out");
        let etcd = Etcd::start(&dir);
        let a = Discovery::start(settings(etcd.endpoints(), 30), record("a"))
            .await
            .expect("start a");
        assert!(a.up());
        // Long enough for four pings at the old 2 s, fewer than one keepalive at 30 s / 3.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(12) {
            assert!(a.up(), "down after {:?}: {:?}", t.elapsed(), a.last_error());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        a.shutdown().await;
    })
    .await;
}
