use super::*;
use crate::record::Host;

const P: &str = "/busway";

fn rec(name: &str) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        namespace: "default".into(),
        version: "0.1.0".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        host: Host {
            hostname: "h".into(),
            pid: 1,
        },
        bus: vec!["tcp://127.0.0.1:7100".into()],
        services: vec![],
        gateways: vec![],
        relay: false,
        advertise_relay: None,
    }
}

fn key(name: &str) -> String {
    record_key(P, "default", name)
}

fn kv<'a>(key: &'a str, value: &'a [u8], rev: i64) -> Kv<'a> {
    Kv {
        key: key.as_bytes(),
        value,
        mod_revision: rev,
    }
}

fn names(n: &Nodes) -> Vec<String> {
    n.view().nodes.values().map(|r| r.name.clone()).collect()
}

#[test]
fn the_own_record_is_in_view_before_etcd_answers() {
    let n = Nodes::new(P, rec("me"));
    assert_eq!(names(&n), ["me"]);
    assert_eq!(n.view().revision, 0);
}

#[test]
fn puts_add_and_change_deletes_remove() {
    let (c, mut n) = (Counts::default(), Nodes::new(P, rec("me")));
    let (ka, a) = (key("a"), rec("a").to_json());
    assert_eq!(n.put(kv(&ka, &a, 2), &c), Some(Update::Add(rec("a"))));
    // The same value again (a txn that rewrote it): no update.
    assert_eq!(n.put(kv(&ka, &a, 3), &c), None);
    let mut a2 = rec("a");
    a2.labels.insert("app".into(), "chat".into());
    assert_eq!(
        n.put(kv(&ka, &a2.to_json(), 4), &c),
        Some(Update::Add(a2.clone()))
    );
    assert_eq!(*n.view().nodes[&ka], a2);
    assert_eq!(
        n.delete(ka.as_bytes()),
        Some(Update::Remove {
            namespace: "default".into(),
            name: "a".into()
        })
    );
    assert_eq!(n.delete(ka.as_bytes()), None);
    assert_eq!(names(&n), ["me"]);
}

#[test]
fn a_record_that_goes_bad_leaves_the_view_and_is_counted() {
    let (c, mut n) = (Counts::default(), Nodes::new(P, rec("me")));
    let ka = key("a");
    n.put(kv(&ka, &rec("a").to_json(), 2), &c);
    assert!(matches!(
        n.put(kv(&ka, b"{junk", 3), &c),
        Some(Update::Remove { .. })
    ));
    assert_eq!(n.put(kv(&ka, b"{junk", 4), &c), None);
    assert_eq!(c.get()[0], ("parse", 2));
    // Impersonation: a's record under b's key.
    let kb = key("b");
    assert_eq!(n.put(kv(&kb, &rec("a").to_json(), 5), &c), None);
    assert_eq!(c.get()[1], ("key", 1));
    let mut bad = rec("c");
    bad.bus = vec!["http://127.0.0.1:1".into()];
    let kc = key("c");
    assert_eq!(n.put(kv(&kc, &bad.to_json(), 6), &c), None);
    assert_eq!(c.get()[2], ("address", 1));
    assert_eq!(names(&n), ["me"]);
}

#[test]
fn odd_keys_are_key_rejections_not_panics() {
    let (c, mut n) = (Counts::default(), Nodes::new(P, rec("me")));
    let v = rec("a").to_json();
    let bad = Kv {
        key: b"/busway/nodes/default/\xff",
        value: &v,
        mod_revision: 2,
    };
    assert_eq!(n.put(bad, &c), None);
    let long = format!("{}{}", key("a"), "x".repeat(MAX_KEY_BYTES));
    assert_eq!(n.put(kv(&long, &v, 3), &c), None);
    assert_eq!(c.get()[1], ("key", 2));
}

#[test]
fn events_for_the_own_key_never_replace_the_local_record() {
    let (c, mut n) = (Counts::default(), Nodes::new(P, rec("me")));
    let km = key("me");
    let mut other = rec("me");
    other.host.hostname = "elsewhere".into();
    assert_eq!(n.put(kv(&km, &other.to_json(), 2), &c), None);
    assert_eq!(n.delete(km.as_bytes()), None);
    assert_eq!(*n.view().nodes[&km], rec("me"));
    let mut me2 = rec("me");
    me2.labels.insert("v".into(), "2".into());
    assert_eq!(n.set_own(me2.clone()), Some(Update::Add(me2.clone())));
    assert_eq!(n.set_own(me2.clone()), None);
    assert_eq!(*n.view().nodes[&km], me2);
}

#[test]
fn a_snapshot_replaces_everything_and_keeps_the_own_record() {
    let (c, mut n) = (Counts::default(), Nodes::new(P, rec("me")));
    let (ka, kb, kj) = (key("a"), key("b"), key("junk"));
    n.put(kv(&ka, &rec("a").to_json(), 2), &c);
    let b = rec("b").to_json();
    let snap = [kv(&kb, &b, 7), kv(&kj, b"[]", 5)];
    let u = n.snapshot(snap, 9, &c);
    assert_eq!(u, Update::Reset(vec![rec("b"), rec("me")]));
    assert_eq!(names(&n), ["b", "me"]);
    assert_eq!(n.revision(), 9);
    // The same snapshot again (a reconnect): the junk is not counted twice.
    n.snapshot(snap, 10, &c);
    assert_eq!(c.get()[0], ("parse", 1));
    n.seen(8);
    assert_eq!(n.revision(), 10);
}

#[test]
fn views_share_their_map_until_it_changes() {
    let (c, mut n) = (Counts::default(), Nodes::new(P, rec("me")));
    let before = n.view();
    let ka = key("a");
    n.put(kv(&ka, &rec("a").to_json(), 2), &c);
    // The published view is untouched by the change (copy on write).
    assert_eq!(before.nodes.len(), 1);
    assert_eq!(n.view().nodes.len(), 2);
    assert!(Arc::ptr_eq(&n.view().nodes, &n.view().nodes));
}
