//! Issue 11, item 4: a reload changes `bus.secret` and `connections_per_peer` without losing
//! a session: established transports keep running, new ones use the new settings, and surplus
//! transports drain.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;

const NEW_SECRET: &str = "the-rotated-secret-for-tests";

/// Writes `cfg` over `file` in the chain's directory, sends SIGHUP and waits until `admin`
/// counts `n` reloads of `result`.
fn reload(chain: &Chain, node: &Proc, file: &str, cfg: &str, result: &str, n: f64) {
    chain.dir.write(file, cfg);
    node.signal(1);
    let series = format!("busway_config_reloads_total{{result=\"{result}\"}}");
    let admin = node.addr("admin");
    assert!(
        wait_for(Duration::from_secs(5), || metric(&admin, &series)
            == Some(n)),
        "no {result} reload: {}",
        node.stderr()
    );
}

/// An ingress of `bus` whose `secret` is `secret` (a TOML value: a string or a list).
fn ingress_with(bus: &str, secret: &str, per_peer: u32) -> String {
    ingress_toml(bus, "").replace(
        &format!("[bus]\nsecret = \"{SECRET}\""),
        &format!("[bus]\nsecret = {secret}\nconnections_per_peer = {per_peer}"),
    )
}

/// An egress in front of `backend` whose `secret` is `secret` (a TOML value).
fn egress_with(backend: &str, secret: &str) -> String {
    egress_toml(backend, "").replace(&format!("\"{SECRET}\""), secret)
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// An echo backend behind an ingress -> egress chain, with one session open through it.
struct Open {
    backend: backends::Backend,
    chain: Chain,
    /// The egress's bus URL.
    bus: String,
    admin_i: String,
    admin_e: String,
    session: TcpStream,
}

fn open_chain() -> Open {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let mut session = chain.client();
    roundtrip(&mut session, b"before");
    Open {
        bus: chain.egress.url("bus"),
        admin_i: chain.ingress.addr("admin"),
        admin_e: chain.egress.addr("admin"),
        backend,
        chain,
        session,
    }
}

fn auth_failures(admin: &str) -> f64 {
    metric(admin, "busway_handshake_failures_total{reason=\"auth\"}").unwrap_or(0.0)
}

fn up(admin: &str) -> usize {
    http::get(admin, "/v1/peers")
        .body
        .matches("\"state\":\"up\"")
        .count()
}

#[test]
fn a_secret_changed_on_both_nodes_keeps_sessions_and_new_transports_prove_it() {
    let Open {
        backend,
        chain,
        bus,
        admin_i,
        admin_e,
        session: mut c,
    } = open_chain();

    let egress = egress_with(&backend.url(), &quoted(NEW_SECRET));
    reload(&chain, &chain.egress, "egress.toml", &egress, "ok", 1.0);
    roundtrip(&mut c, b"egress rotated");
    // A second transport, dialled with the new secret, comes up: both ends use it.
    let ingress = ingress_with(&bus, &quoted(NEW_SECRET), 2);
    reload(&chain, &chain.ingress, "ingress.toml", &ingress, "ok", 1.0);
    wait_peers_up(&admin_i, 2);
    wait_peers_up(&admin_e, 2);
    roundtrip(&mut c, b"both rotated");
    for _ in 0..4 {
        let mut n = chain.client();
        roundtrip(&mut n, b"a new session");
    }
    assert_eq!(
        (auth_failures(&admin_i), auth_failures(&admin_e)),
        (0.0, 0.0)
    );
}

/// CONTRACT section 10: add the new secret second everywhere, make it first, remove the old,
/// reloading after each step; every transport dialled on the way authenticates.
#[test]
fn a_secret_rotates_through_a_list_without_a_failed_handshake() {
    let Open {
        backend,
        chain,
        bus,
        admin_i,
        admin_e,
        session: mut c,
    } = open_chain();
    let both = |first: &str, second: &str| format!("[{}, {}]", quoted(first), quoted(second));

    let egress = egress_with(&backend.url(), &both(SECRET, NEW_SECRET));
    reload(&chain, &chain.egress, "egress.toml", &egress, "ok", 1.0);
    // The ingress proves the new secret, which the egress accepts as its second.
    let ingress = ingress_with(&bus, &both(NEW_SECRET, SECRET), 2);
    reload(&chain, &chain.ingress, "ingress.toml", &ingress, "ok", 1.0);
    wait_peers_up(&admin_i, 2);
    // The egress proves the new secret, which the ingress has first.
    let egress = egress_with(&backend.url(), &quoted(NEW_SECRET));
    reload(&chain, &chain.egress, "egress.toml", &egress, "ok", 2.0);
    let ingress = ingress_with(&bus, &quoted(NEW_SECRET), 3);
    reload(&chain, &chain.ingress, "ingress.toml", &ingress, "ok", 2.0);
    wait_peers_up(&admin_i, 3);
    wait_peers_up(&admin_e, 3);
    roundtrip(&mut c, b"rotated");
    assert_eq!(
        (auth_failures(&admin_i), auth_failures(&admin_e)),
        (0.0, 0.0)
    );
}

#[test]
fn a_secret_changed_on_one_node_fails_new_transports_only() {
    let Open {
        backend,
        chain,
        bus,
        admin_i,
        admin_e,
        session: mut c,
    } = open_chain();

    // The ingress dials a second transport with a secret the egress does not have.
    let ingress = ingress_with(&bus, &quoted(NEW_SECRET), 2);
    reload(&chain, &chain.ingress, "ingress.toml", &ingress, "ok", 1.0);
    for admin in [&admin_e, &admin_i] {
        assert!(
            wait_for(Duration::from_secs(5), || auth_failures(admin) >= 1.0),
            "no auth failure counted at {admin}"
        );
    }
    // The transport that authenticated before goes on carrying old and new sessions.
    roundtrip(&mut c, b"the open session");
    let mut n = chain.client();
    roundtrip(&mut n, b"a new session on the old transport");
    assert_eq!((up(&admin_i), up(&admin_e)), (1, 1));

    // The egress rotated the other way: a node dialling with the old secret fails too.
    let egress = egress_with(&backend.url(), &quoted(NEW_SECRET));
    reload(&chain, &chain.egress, "egress.toml", &egress, "ok", 1.0);
    let before = auth_failures(&admin_e);
    let late = Proc::run_toml(&chain.dir, "late.toml", &ingress_toml(&bus, ""));
    assert!(
        wait_for(Duration::from_secs(5), || auth_failures(&admin_e) > before),
        "the egress accepted the old secret after its reload"
    );
    let mut refused = connect(&late.addr("chat"));
    let _ = std::io::Write::write_all(&mut refused, b"x");
    let mut buf = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut refused, &mut buf).unwrap_or(0),
        0,
        "a session crossed a transport with the old secret"
    );
    roundtrip(&mut c, b"the open session still");
}

#[test]
fn connections_per_peer_grows_and_shrinks_without_losing_a_session() {
    let Open {
        chain,
        bus,
        admin_i,
        admin_e,
        session: mut first,
        ..
    } = open_chain();

    reload(
        &chain,
        &chain.ingress,
        "ingress.toml",
        &ingress_with(&bus, &quoted(SECRET), 3),
        "ok",
        1.0,
    );
    wait_peers_up(&admin_i, 3);
    wait_peers_up(&admin_e, 3);
    // Sessions go to the least-loaded transport: these two to the new ones.
    let mut later: Vec<TcpStream> = (0..2).map(|_| chain.client()).collect();
    for l in &mut later {
        roundtrip(l, b"on a new transport");
    }

    reload(
        &chain,
        &chain.ingress,
        "ingress.toml",
        &ingress_with(&bus, &quoted(SECRET), 1),
        "ok",
        2.0,
    );
    // The surplus transports drain: their sessions go on to the end.
    for l in &mut later {
        roundtrip(l, b"draining, not cut");
    }
    roundtrip(&mut first, b"kept");
    drop(later);
    wait_peers_up(&admin_i, 1);
    wait_peers_up(&admin_e, 1);
    roundtrip(&mut first, b"still kept");
    let mut n = chain.client();
    roundtrip(&mut n, b"a new session");
    assert!(
        chain
            .ingress
            .stderr()
            .contains("connections_per_peer lowered"),
        "{}",
        chain.ingress.stderr()
    );
}
