//! CONTRACT 9.4: a session whose peers have no established transport yet — right after start,
//! or while one is being redialled — waits up to `connect_timeout` for it instead of being
//! refused, in every mode. Each egress is reached through a forwarder that holds new
//! connections for a while, so the ingress's transports are still coming up when the client
//! arrives.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use forward::{delayed_forward, Forward};

/// How long the forwarder holds each new bus connection: well inside `connect_timeout` (1 s).
const HOLD: Duration = Duration::from_millis(400);

struct Slow {
    _dir: TempDir,
    _egress: Vec<Proc>,
    _forwards: Vec<Forward>,
    ingress: Proc,
}

/// `n` echo egress nodes, each behind a forwarder that holds new connections for [`HOLD`], and
/// an ingress over all of them in `mode`.
fn slow_peers(n: usize, mode: &str) -> Slow {
    let dir = TempDir::new("wait");
    let mut egress = Vec::new();
    let mut forwards = Vec::new();
    for k in 0..n {
        let backend = backends::echo();
        let e = Proc::run_toml(
            &dir,
            &format!("e{k}.toml"),
            &egress_toml(&backend.url(), ""),
        );
        forwards.push(delayed_forward(&e.addr("bus"), HOLD));
        egress.push(e);
    }
    let peers: Vec<String> = forwards.iter().map(|f| f.url.clone()).collect();
    let ingress = Proc::run_toml(&dir, "i.toml", &ingress_over_toml(&peers, mode, ""));
    Slow {
        _dir: dir,
        _egress: egress,
        _forwards: forwards,
        ingress,
    }
}

fn transports_up(admin: &str) -> usize {
    http::get(admin, "/v1/peers")
        .body
        .matches("\"state\":\"up\"")
        .count()
}

/// Connects right after `ready`, checks no transport was up yet, and sends `ping`.
fn first_client_right_after_start(s: &Slow) -> std::net::TcpStream {
    let mut c = connect(&s.ingress.addr("chat"));
    assert_eq!(
        transports_up(&s.ingress.addr("admin")),
        0,
        "a transport was already up: the test would not exercise the wait"
    );
    c.write_all(b"ping").unwrap();
    c
}

#[test]
fn one_to_one_waits_for_the_transport_being_dialled() {
    let s = slow_peers(1, "one-to-one");
    let mut c = first_client_right_after_start(&s);
    assert_eq!(read_n(&mut c, 4), b"ping");
}

#[test]
fn half_duplex_over_three_peers_waits_for_the_transports_being_dialled() {
    let s = slow_peers(3, "half-duplex");
    let mut c = first_client_right_after_start(&s);
    assert_eq!(read_n(&mut c, 4), b"ping");
    roundtrip(&mut c, b"latched");
}

#[test]
fn full_duplex_waits_for_every_transport_being_dialled() {
    let s = slow_peers(3, "full-duplex");
    let mut c = first_client_right_after_start(&s);
    // All three peers were reached, not just the first to come up.
    assert_eq!(read_n(&mut c, 12), b"pingpingping");
}

/// While one of two peers is being redialled (its node restarted), a new full-duplex session
/// waits for it and reaches both.
#[test]
fn a_session_during_a_redial_waits_for_the_peer_coming_back() {
    let dir = TempDir::new("redial");
    let b1 = backends::echo();
    let b2 = backends::echo();
    let e1 = Proc::run_toml(&dir, "e1.toml", &egress_toml(&b1.url(), ""));
    let e2_path = dir.write("e2.toml", &egress_toml(&b2.url(), ""));
    let mut e2 = Proc::start(&["run", "-c", e2_path.to_str().unwrap()]);
    let bus2 = e2.url("bus");
    let f2 = delayed_forward(&e2.addr("bus"), HOLD);
    let peers = [e1.url("bus"), f2.url.clone()];
    let ingress = Proc::run_toml(
        &dir,
        "i.toml",
        &ingress_over_toml(&peers, "full-duplex", ""),
    );
    let admin = ingress.addr("admin");
    wait_peers_up(&admin, 2);
    // The second egress dies and comes back on the same port; its transport is being redialled
    // (and held by the forwarder) when the client arrives.
    e2.kill();
    wait_peers_up(&admin, 1);
    let again = egress_toml(&b2.url(), "").replace(
        "listen = [\"tcp://127.0.0.1:0\"]\nsecret",
        &format!("listen = [\"{bus2}\"]\nsecret"),
    );
    let _e2 = Proc::run_toml(&dir, "e2b.toml", &again);
    let mut c = connect(&ingress.addr("chat"));
    assert_eq!(transports_up(&admin), 1, "the redial was already done");
    c.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 2), b"xx", "both peers answer");
}

/// A peer that is known to be down (its dial failed) is not waited for: the session goes on
/// with the others at once.
#[test]
fn a_peer_known_down_is_not_waited_for() {
    let dir = TempDir::new("down");
    let b1 = backends::echo();
    let e1 = Proc::run_toml(&dir, "e1.toml", &egress_toml(&b1.url(), ""));
    let dead = format!("tcp://{}", backends::refusing_addr());
    let peers = [e1.url("bus"), dead];
    let ingress = Proc::run_toml(
        &dir,
        "i.toml",
        &ingress_over_toml(&peers, "full-duplex", "")
            .replace("connect_timeout = \"1s\"", "connect_timeout = \"5s\""),
    );
    wait_peers_up(&ingress.addr("admin"), 1);
    let start = std::time::Instant::now();
    let mut c = connect(&ingress.addr("chat"));
    c.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut c, 1), b"y");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "waited {:?} for a dead peer",
        start.elapsed()
    );
}
