//! What the discovery tests share: records, settings, polling, and reading etcd with etcdctl.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use busway_discovery::{Discovery, Host, NodeRecord, Settings, Update, View};
use busway_test_support::etcd::{base64, Etcd};
use serde_json::Value;

pub const PREFIX: &str = "/busway";

/// Every test body runs within this: a hung etcd call fails the test instead of the run.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

pub fn record(name: &str) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        namespace: "default".into(),
        version: "0.1.0".into(),
        labels: BTreeMap::from([("app".to_string(), "chat".to_string())]),
        annotations: BTreeMap::new(),
        host: Host::this_process(),
        bus: vec!["tcp://127.0.0.1:7100".into()],
        services: vec!["chat".into()],
        gateways: vec![],
        relay: false,
        advertise_relay: None,
    }
}

pub fn settings(endpoints: Vec<String>, ttl_secs: u64) -> Settings {
    Settings {
        endpoints,
        prefix: PREFIX.into(),
        lease_ttl: Duration::from_secs(ttl_secs),
    }
}

pub async fn start(etcd: &Etcd, name: &str) -> Discovery {
    Discovery::start(settings(etcd.endpoints(), 10), record(name))
        .await
        .expect("start")
}

/// Polls `cond` every 20 ms for up to `limit`; how long it took, or `None`.
pub async fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if cond() {
            return Some(t.elapsed());
        }
        if t.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names in `d`'s view.
pub fn names(d: &Discovery) -> Vec<String> {
    names_of(&d.view().borrow())
}

pub fn names_of(v: &View) -> Vec<String> {
    v.nodes.values().map(|r| r.name.clone()).collect()
}

/// `etcdctl get --prefix KEY -w json`: (key, value as JSON or `Value::Null` if it is not,
/// lease) for every key.
pub fn get_json(etcd: &Etcd, prefix: &str) -> Vec<(String, Value, i64)> {
    let out = etcd.ctl(&["get", "--prefix", prefix, "-w", "json"]);
    let v: Value = serde_json::from_str(&out).expect("etcdctl json");
    let Some(kvs) = v["kvs"].as_array() else {
        return vec![];
    };
    kvs.iter()
        .map(|kv| {
            let key = String::from_utf8(base64(kv["key"].as_str().unwrap())).unwrap();
            let value = serde_json::from_slice(&base64(kv["value"].as_str().unwrap()))
                .unwrap_or(Value::Null);
            (key, value, kv["lease"].as_i64().unwrap_or(0))
        })
        .collect()
}

/// Every update received so far, without waiting.
pub fn drain(rx: &mut tokio::sync::broadcast::Receiver<Update>) -> Vec<Update> {
    let mut got = Vec::new();
    while let Ok(u) = rx.try_recv() {
        got.push(u);
    }
    got
}

/// Runs a test body within [`TEST_LIMIT`].
pub async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("the test ran past its limit");
}
