//! What the discovery tests share: nodes' configurations with a `[discovery]` section, and
//! reading a node's view through its admin API.

use std::time::Duration;

use busway_test_support::etcd::Etcd;
use busway_test_support::http;
use serde_json::Value;

use super::{connect, wait_for, Proc, SECRET};

/// The `[discovery]` section every node of these tests shares: a short lease, so that a
/// killed node leaves the views quickly.
pub fn discovery(etcd: &Etcd) -> String {
    discovery_at(&[etcd.endpoint()], "2s")
}

/// A `[discovery]` section naming `endpoints`, in that order, with leases of `ttl`.
pub fn discovery_at(endpoints: &[String], ttl: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[discovery]\netcd = [{}]\nprefix = \"/it\"\nlease_ttl = \"{ttl}\"\n",
        list.join(", ")
    )
}

/// An egress named `name`, labelled app=chat, serving `chat` from `backend`, registered in etcd.
pub fn egress_cfg(etcd: &Etcd, name: &str, backend: &str) -> String {
    egress_with(&discovery(etcd), name, backend)
}

/// [`egress_cfg`] with the `[discovery]` section `disc`.
pub fn egress_with(disc: &str, name: &str, backend: &str) -> String {
    format!(
        r#"
[node]
name = "{name}"
labels = {{ app = "chat" }}
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
listen = ["tcp://127.0.0.1:0"]
secret = "{SECRET}"
{disc}[[service]]
name = "chat"
backends = ["{backend}"]
"#
    )
}

/// An ingress whose `chat` goes to every discovered node labelled app=chat.
pub fn ingress_cfg(etcd: &Etcd) -> String {
    ingress_with(&discovery(etcd))
}

/// [`ingress_cfg`] with the `[discovery]` section `disc`.
pub fn ingress_with(disc: &str) -> String {
    format!(
        r#"
[node]
name = "ingress"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
secret = "{SECRET}"
{disc}[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
peers = ["label:app=chat"]
connect_timeout = "2s"
"#
    )
}

pub fn nodes(p: &Proc) -> Vec<Value> {
    let a = http::get(&p.addr("admin"), "/v1/nodes");
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str::<Value>(&a.body)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn names(p: &Proc) -> Vec<String> {
    let mut v: Vec<String> = nodes(p)
        .iter()
        .map(|n| n["name"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// The banner the session's backend greets with.
pub fn greeting(p: &Proc) -> Option<String> {
    let mut c = connect(&p.addr("chat"));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2];
    std::io::Read::read_exact(&mut c, &mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Waits up to `limit` until the names in `p`'s view are `want` (sorted), else fails the test
/// with what it has and its log.
pub fn assert_names_within(p: &Proc, want: &[&str], limit: Duration) {
    let ok = wait_for(limit, || names(p) == want);
    assert!(ok, "wanted {want:?}, have {:?}\n{}", names(p), p.stderr());
}
