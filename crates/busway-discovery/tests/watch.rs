//! Watching against a real etcd: other nodes coming and going, records that break a rule, a
//! watcher that falls behind a compaction, and leases that lapse.

mod common;

use std::time::{Duration, Instant};

use busway_discovery::{record_key, Discovery, Update};
use busway_test_support::etcd::Etcd;
use busway_test_support::forward::cuttable_forward;
use busway_test_support::TempDir;
use common::*;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_appear_and_disappear_within_a_second() {
    bounded(async {
        let dir = TempDir::new("disc-watch");
        let etcd = Etcd::start(&dir);
        let a = start(&etcd, "a").await;
        let mut updates = a.updates();
        // A snapshot: b was there before c started.
        let b = start(&etcd, "b").await;
        let c = start(&etcd, "c").await;
        assert!(
            within(SECOND, || names(&c) == ["a", "b", "c"])
                .await
                .is_some(),
            "{:?}",
            names(&c)
        );
        // The watch: b and c joined after a.
        assert!(
            within(SECOND, || names(&a) == ["a", "b", "c"])
                .await
                .is_some(),
            "{:?}",
            names(&a)
        );
        let got = drain(&mut updates);
        assert!(got.contains(&Update::Add(record("b"))), "{got:?}");
        assert!(got.contains(&Update::Add(record("c"))), "{got:?}");
        b.shutdown().await;
        assert!(
            within(SECOND, || names(&a) == ["a", "c"]).await.is_some(),
            "{:?}",
            names(&a)
        );
        assert!(within(SECOND, || names(&c) == ["a", "c"]).await.is_some());
        assert!(
            within(SECOND, || drain(&mut updates).contains(&Update::Remove {
                namespace: "default".into(),
                name: "b".into()
            }))
            .await
            .is_some()
        );
        // A changed record is an Add with the new contents.
        let mut c2 = record("c");
        c2.labels.insert("v".into(), "2".into());
        c.set_record(c2.clone());
        assert!(within(SECOND, || a
            .view()
            .borrow()
            .nodes
            .get(c.key())
            .map(|r| &**r)
            == Some(&c2))
        .await
        .is_some());
        assert!(a.view().borrow().revision > 0);
        c.shutdown().await;
        a.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_ignored_and_counted() {
    bounded(async {
        let dir = TempDir::new("disc-watch");
        let etcd = Etcd::start(&dir);
        let key = |n: &str| record_key(PREFIX, "default", n);
        let json = |r: &busway_discovery::NodeRecord| String::from_utf8(r.to_json()).unwrap();
        // One bad record before the snapshot, the rest while watching.
        etcd.put(&key("junk"), "{not json");
        let a = start(&etcd, "a").await;
        let b = start(&etcd, "b").await;
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        // b's name under another key: impersonation.
        etcd.put(&key("evil"), &json(&record("b")));
        // A key that does not match the namespace.
        etcd.put(&record_key(PREFIX, "other", "x"), &json(&record("x")));
        // An http:// bus URL.
        let mut h = record("h");
        h.bus = vec!["http://127.0.0.1:80".into()];
        etcd.put(&key("h"), &json(&h));
        // A good record, last: once it is in view, every bad one before it has been read.
        etcd.put(&key("good"), &json(&record("good")));
        assert!(within(SECOND, || names(&a).contains(&"good".to_string()))
            .await
            .is_some());
        assert_eq!(names(&a), ["a", "b", "good"]);
        assert_eq!(*a.view().borrow().nodes[&key("b")], record("b"));
        assert_eq!(a.rejected(), [("parse", 1), ("key", 2), ("address", 1)]);
        // A node that started later reads them all from its snapshot and counts the same.
        let c = start(&etcd, "c").await;
        assert_eq!(names(&c), ["a", "b", "c", "good"]);
        assert_eq!(c.rejected(), [("parse", 1), ("key", 2), ("address", 1)]);
        // A good record that goes bad leaves the view.
        etcd.put(&key("good"), "[]");
        assert!(within(SECOND, || !names(&a).contains(&"good".to_string()))
            .await
            .is_some());
        assert_eq!(a.rejected()[0], ("parse", 2));
        // Nothing was fatal.
        assert!(a.up() && b.up() && c.up());
        for d in [a, b, c] {
            d.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_a_compaction_resets_from_a_fresh_snapshot() {
    bounded(async {
        let dir = TempDir::new("disc-watch");
        let etcd = Etcd::start(&dir);
        // a reaches etcd through a link the test can cut.
        let link = cuttable_forward(&busway_test_support::hostport(
            &etcd.endpoint().replace("http://", "tcp://"),
        ));
        let a = Discovery::start(
            settings(vec![format!("http://{}", link.addr)], 10),
            record("a"),
        )
        .await
        .expect("start a");
        let b = start(&etcd, "b").await;
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        let mut updates = a.updates();
        link.cut();
        assert!(within(Duration::from_secs(5), || !a.up()).await.is_some());
        // Several revisions a does not see, then the history is compacted away.
        let c = start(&etcd, "c").await;
        for i in 0..5 {
            let mut b2 = record("b");
            b2.labels.insert("gen".into(), i.to_string());
            b.set_record(b2);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let d = start(&etcd, "d").await;
        d.shutdown().await;
        let rev = etcd.revision();
        etcd.ctl(&["compact", &rev.to_string()]);
        assert_eq!(names(&a), ["a", "b"], "the last view is kept while away");
        link.mend();
        let back = within(Duration::from_secs(6), || a.up()).await;
        assert!(back.is_some(), "{:?}", a.last_error());
        let got = drain(&mut updates);
        let reset = got.iter().find_map(|u| match u {
            Update::Reset(all) => Some(all.clone()),
            _ => None,
        });
        let reset = reset.unwrap_or_else(|| panic!("no Reset in {got:?}"));
        let reset_names: Vec<&str> = reset.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(reset_names, ["a", "b", "c"]);
        let view = a.view().borrow().clone();
        assert_eq!(names_of(&view), ["a", "b", "c"]);
        assert_eq!(view.nodes[b.key()].labels["gen"], "4");
        assert!(view.revision >= rev);
        // And the watch goes on from there.
        b.shutdown().await;
        assert!(within(SECOND, || names(&a) == ["a", "c"]).await.is_some());
        c.shutdown().await;
        a.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_record_lapses_with_its_lease() {
    bounded(async {
        let dir = TempDir::new("disc-watch");
        let etcd = Etcd::start(&dir);
        let a = start(&etcd, "a").await;
        let ttl = 2;
        let b = Discovery::start(settings(etcd.endpoints(), ttl), record("b"))
            .await
            .expect("start b");
        assert!(within(SECOND, || names(&a) == ["a", "b"]).await.is_some());
        // No shutdown: its task stops as in a crash, and nothing deletes the record.
        drop(b);
        let killed = Instant::now();
        let gone = within(Duration::from_secs(ttl + 2), || names(&a) == ["a"]).await;
        let limit = Duration::from_secs(ttl + 1);
        assert!(
            gone.is_some() && killed.elapsed() <= limit + Duration::from_millis(100),
            "b still in view {:?} after the kill",
            killed.elapsed()
        );
        // The record written by another client with a lease of its own goes the same way.
        let lease = etcd.grant(ttl);
        let key = record_key(PREFIX, "default", "x");
        etcd.put_leased(
            &key,
            &String::from_utf8(record("x").to_json()).unwrap(),
            &lease,
        );
        let put = Instant::now();
        assert!(within(SECOND, || names(&a) == ["a", "x"]).await.is_some());
        assert!(within(Duration::from_secs(ttl + 2), || names(&a) == ["a"])
            .await
            .is_some());
        assert!(
            put.elapsed() <= limit + Duration::from_millis(200),
            "{:?}",
            put.elapsed()
        );
        a.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_deleted_by_someone_else_is_written_again() {
    bounded(async {
        let dir = TempDir::new("disc-watch");
        let etcd = Etcd::start(&dir);
        let a = start(&etcd, "a").await;
        etcd.ctl(&["del", a.key()]);
        let back = within(Duration::from_secs(2), || {
            get_json(&etcd, PREFIX).len() == 1
        })
        .await;
        assert!(back.is_some(), "not registered again");
        // And revoking its lease under it: a new lease, within the contract's 5 s.
        let (_, _, lease) = get_json(&etcd, PREFIX).remove(0);
        etcd.ctl(&["lease", "revoke", &format!("{lease:x}")]);
        let again = within(Duration::from_secs(5), || {
            get_json(&etcd, PREFIX)
                .first()
                .is_some_and(|(_, _, l)| *l != lease && *l != 0)
        })
        .await;
        assert!(again.is_some(), "{:?}", a.last_error());
        assert!(within(SECOND, || a.up()).await.is_some());
        a.shutdown().await;
    })
    .await;
}
