//! Namespaces, gateways and relays (CONTRACT section 6) with real nodes: a session to another
//! namespace goes through the gateway its target publishes, or through a chain of relays, and
//! a loop of relays is refused instead of circling.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use busway_test_support::backends::{banner, pattern};
use busway_test_support::etcd::Etcd;
use busway_test_support::http;
use common::discovery::{discovery, nodes};
use common::{connect, metric, wait_for, Proc, TempDir, SECRET};

/// A backend that speaks first (`hi`), then echoes until EOF and half-closes back: a session
/// through it shows server-speaks-first, bytes both ways and half-close at once.
fn greeting_echo() -> String {
    banner(b"hi").url()
}

/// A node `namespace/name` with `extra` sections, a bus listener and an admin API.
fn node(etcd: &Etcd, namespace: &str, name: &str, labels: &str, extra: &str) -> String {
    format!(
        r#"
[node]
name = "{name}"
namespace = "{namespace}"
labels = {{ {labels} }}
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
listen = ["tcp://127.0.0.1:0"]
secret = "{SECRET}"
{}{extra}
"#,
        discovery(etcd)
    )
}

const CHAT_EGRESS: &str = "[[service]]\nname = \"chat\"\nbackends = [\"BACKEND\"]\n";
const CHAT_INGRESS: &str = "[[service]]\nname = \"chat\"\nlisten = [\"tcp://127.0.0.1:0\"]\npeers = [\"label:app=chat\"]\nconnect_timeout = \"2s\"\n";

fn wait_seen(p: &Proc, n: usize) {
    assert!(
        wait_for(Duration::from_secs(10), || nodes(p).len() == n),
        "{} nodes in view, not {n}\n{}",
        nodes(p).len(),
        p.stderr()
    );
}

/// One session to `chat` at `p`: the greeting, then `data` sent and half-closed, and
/// everything read back until EOF. `None` when the session got no greeting.
fn session(p: &Proc, data: &[u8]) -> Option<Vec<u8>> {
    let mut c = connect(&p.addr("chat"));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hi = [0u8; 2];
    c.read_exact(&mut hi).ok()?;
    assert_eq!(&hi, b"hi");
    let mut w = c.try_clone().unwrap();
    let sent = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    Some(back)
}

/// True when a client of `chat` at `p` is closed without a byte.
fn refused(p: &Proc) -> bool {
    let mut c = connect(&p.addr("chat"));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    matches!(c.read(&mut buf), Ok(0) | Err(_))
}

/// `busway_sessions_total{service="chat",outcome}` at `p`.
fn sessions(p: &Proc, outcome: &str) -> f64 {
    let series = format!("busway_sessions_total{{service=\"chat\",outcome=\"{outcome}\"}}");
    metric(&p.addr("admin"), &series).unwrap_or(0.0)
}

#[test]
fn two_namespaces_joined_by_a_gateway_and_only_for_the_nodes_it_matches() {
    let dir = TempDir::new("gw");
    let etcd = Etcd::start(&dir);
    let sock = dir.path("e1-gw.sock");
    let sock = sock.to_str().unwrap();
    let egress = Proc::run_toml(
        &dir,
        "e.toml",
        &node(
            &etcd,
            "edge",
            "e1",
            "app = \"chat\"",
            &format!(
                "[[gateway]]\naddress = \"unix://{sock}\"\npriority = 5\nmatch = {{ namespace = \"prod\" }}\n{}",
                CHAT_EGRESS.replace("BACKEND", &greeting_echo())
            ),
        )
        .replace(
            "listen = [\"tcp://127.0.0.1:0\"]\nsecret",
            &format!("listen = [\"tcp://127.0.0.1:0\", \"unix://{sock}\"]\nsecret"),
        ),
    );
    let prod = Proc::run_toml(&dir, "p.toml", &node(&etcd, "prod", "i1", "", CHAT_INGRESS));
    let other = Proc::run_toml(
        &dir,
        "o.toml",
        &node(&etcd, "other", "i2", "", CHAT_INGRESS),
    );
    wait_seen(&prod, 3);
    wait_seen(&other, 3);

    // The record publishes the gateway as configured.
    let out = etcd.ctl(&["get", "/it/nodes/edge/e1", "--print-value-only"]);
    let rec: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rec["gateways"][0]["address"], format!("unix://{sock}"));
    assert_eq!(rec["gateways"][0]["priority"], 5);
    assert_eq!(rec["gateways"][0]["match"]["namespace"], "prod");

    // prod matches the gateway: its session goes through it, bytes both ways with half-close.
    let data = pattern(256 * 1024);
    assert_eq!(session(&prod, &data).as_deref(), Some(&data[..]));
    let peers = http::get(&prod.addr("admin"), "/v1/peers").body;
    assert!(peers.contains(sock), "prod dialled the gateway: {peers}");

    // `other` does not match it, and there is no relay: refused, and said why.
    assert!(refused(&other));
    assert!(
        wait_for(Duration::from_secs(5), || other
            .stderr()
            .contains("no gateway this node matches")),
        "{}",
        other.stderr()
    );
    let _ = egress;
}

#[test]
fn a_relay_chain_carries_a_mebibyte_both_ways_with_half_close() {
    let dir = TempDir::new("relays");
    let etcd = Etcd::start(&dir);
    // The ingress (namespace a) recommends relays labelled role=ra; the egress (namespace c)
    // is reached by relays labelled role=rc. r1 is the former, r2 the latter: the session goes
    // ingress > r1 (its own relay) > r2 (the one the target advertises) > egress.
    let egress = Proc::run_toml(
        &dir,
        "e.toml",
        &node(
            &etcd,
            "c",
            "e1",
            "app = \"chat\"",
            &format!(
                "[relay]\nadvertise = {{ labels = {{ role = \"rc\" }} }}\n{}",
                CHAT_EGRESS.replace("BACKEND", &greeting_echo())
            ),
        ),
    );
    let r1 = Proc::run_toml(
        &dir,
        "r1.toml",
        &node(
            &etcd,
            "a",
            "r1",
            "role = \"ra\"",
            "[relay]\nenabled = true\n",
        ),
    );
    let r2 = Proc::run_toml(
        &dir,
        "r2.toml",
        &node(
            &etcd,
            "r",
            "r2",
            "role = \"rc\"",
            "[relay]\nenabled = true\n",
        ),
    );
    let ingress = Proc::run_toml(
        &dir,
        "i.toml",
        &node(
            &etcd,
            "a",
            "i1",
            "",
            &format!("[relay]\nadvertise = {{ labels = {{ role = \"ra\" }} }}\n{CHAT_INGRESS}"),
        ),
    );
    for p in [&ingress, &r1, &r2] {
        wait_seen(p, 4);
    }
    let data = pattern(1024 * 1024);
    let back = session(&ingress, &data).unwrap_or_else(|| {
        panic!(
            "no greeting through the relays\ningress:\n{}\nr1:\n{}\nr2:\n{}",
            ingress.stderr(),
            r1.stderr(),
            r2.stderr()
        )
    });
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes came back changed");
    // Both relays carried it, and counted it as their own session.
    for (name, p) in [("r1", &r1), ("r2", &r2), ("egress", &egress)] {
        assert!(
            wait_for(Duration::from_secs(5), || sessions(p, "ok") >= 1.0),
            "{name} did not count the session\n{}",
            p.stderr()
        );
    }
}

/// Two relays with no registry, each carrying `chat` to the other: the session comes back to
/// the first relay, which finds itself on its path and refuses it.
#[test]
fn a_loop_of_relays_is_refused() {
    let dir = TempDir::new("loop");
    let r1_sock = dir.path("r1.sock");
    let r2_sock = dir.path("r2.sock");
    let unix = |p: &std::path::Path| format!("unix://{}", p.display());
    let relay = |name: &str, me: &std::path::Path, next: &std::path::Path| {
        static_relay(name, &unix(me), &unix(next))
    };
    let r1 = Proc::run_toml(&dir, "r1.toml", &relay("r1", &r1_sock, &r2_sock));
    let r2 = Proc::run_toml(&dir, "r2.toml", &relay("r2", &r2_sock, &r1_sock));
    // r1 started before r2 listened: wait for both transports between them (each relay's
    // dial and its accept of the other's), then for the ingress's.
    let up = |p: &Proc| {
        http::get(&p.addr("admin"), "/v1/peers")
            .body
            .matches("\"state\":\"up\"")
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(10), || up(&r1) == 2 && up(&r2) == 2),
        "r1:\n{}\nr2:\n{}",
        r1.stderr(),
        r2.stderr()
    );
    let ingress = Proc::run_toml(
        &dir,
        "i.toml",
        &common::ingress_toml(&format!("unix://{}", r1_sock.display()), ""),
    );
    common::wait_peer_up(&ingress.addr("admin"));
    assert!(refused(&ingress), "the session was not refused");
    assert!(
        wait_for(Duration::from_secs(5), || r1
            .stderr()
            .contains("default/r1 is on the session's path already")),
        "r1:\n{}\nr2:\n{}",
        r1.stderr(),
        r2.stderr()
    );
    // The ingress counts it refused: the loop came back to it as a reset `loop`.
    assert!(
        wait_for(Duration::from_secs(5), || sessions(&ingress, "refused")
            == 1.0),
        "{}\n{}",
        sessions(&ingress, "refused"),
        ingress.stderr()
    );
    // Nothing circled: each relay carried the session once and counts it refused.
    assert!(sessions(&r1, "refused") >= 1.0 && sessions(&r2, "refused") >= 1.0);
}

/// A relay holds at most a window of a session whose client does not read: the backend's
/// 64 MiB wait at the far end, not in the relay's memory, and every byte arrives once the
/// client reads.
#[test]
fn a_relay_buffers_nothing_for_a_client_that_does_not_read() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let dir = TempDir::new("relay-flow");
    let backend = busway_test_support::backends::source(TOTAL);
    let egress = Proc::run_toml(&dir, "e.toml", &common::egress_toml(&backend.url(), ""));
    let relay = Proc::run_toml(
        &dir,
        "r.toml",
        &static_relay("relay", "tcp://127.0.0.1:0", &egress.url("bus")),
    );
    let ingress = Proc::run_toml(&dir, "i.toml", &common::ingress_toml(&relay.url("bus"), ""));
    common::wait_peer_up(&ingress.addr("admin"));
    let mut c = connect(&ingress.addr("chat"));
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The session reaches the backend, which starts sending at once; the client reads nothing.
    let moved = || -> u64 {
        let s = http::get(&relay.addr("admin"), "/v1/sessions").body;
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|s| s["bytes_out"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(10), || moved() > 0),
        "the relay carried nothing\n{}",
        relay.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    let held = moved();
    // What the relay passed on is what the ingress's window and the client's socket buffers
    // hold: a few MiB, far from the 64 MiB a relay reading freely would have taken.
    assert!(
        held < 16 * 1024 * 1024,
        "the relay moved {held} bytes for a client that reads nothing"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        moved() <= held + 1024 * 1024,
        "still moving: {held} then {}",
        moved()
    );
    let mut got = Vec::with_capacity(TOTAL);
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), TOTAL);
    assert!(
        got == pattern(TOTAL),
        "the bytes arrived changed or out of order"
    );
}

/// A relay with no registry, listening for the bus at `bus`, that carries `chat` on to `peer`
/// through a service of its own of that name.
fn static_relay(name: &str, bus: &str, peer: &str) -> String {
    format!(
        r#"
[node]
name = "{name}"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
listen = ["{bus}"]
secret = "{SECRET}"
[relay]
enabled = true
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
peers = ["{peer}"]
connect_timeout = "2s"
"#
    )
}
