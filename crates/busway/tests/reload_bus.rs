//! A reload changes `bus.secret` and `connections_per_peer`: transports whose peer still
//! authenticates keep running (a secret list rotates without a failed handshake), transports
//! verified by a secret the list dropped close (CONTRACT section 10), new ones use the new
//! settings, and surplus transports drain without losing a session.

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

/// CONTRACT section 10: a reload that replaces the secret closes the transports verified by
/// the old one (they no longer authenticate) and new transports need the new one.
#[test]
fn a_secret_replaced_on_both_nodes_closes_the_old_transports_and_new_ones_prove_it() {
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
    // The egress verified the ingress with the old secret: that transport and its session end.
    assert_eq!(read_to_end_within(&mut c, Duration::from_secs(3)), Some(0));
    // The ingress redials proving the old secret: refused until it has the new one.
    assert!(
        wait_for(Duration::from_secs(5), || auth_failures(&admin_e) >= 1.0),
        "the egress accepted the removed secret"
    );
    let ingress = ingress_with(&bus, &quoted(NEW_SECRET), 1);
    reload(&chain, &chain.ingress, "ingress.toml", &ingress, "ok", 1.0);
    wait_peers_up(&admin_i, 1);
    wait_peers_up(&admin_e, 1);
    for _ in 0..4 {
        let mut n = chain.client();
        roundtrip(&mut n, b"a new session");
    }
}

/// Bytes read until EOF or a reset, or `None` if the stream stayed open for `limit`.
fn read_to_end_within(c: &mut TcpStream, limit: Duration) -> Option<usize> {
    c.set_read_timeout(Some(limit)).ok();
    let mut buf = [0u8; 64];
    let mut n = 0;
    loop {
        match std::io::Read::read(c, &mut buf) {
            Ok(0) => return Some(n),
            Ok(k) => n += k,
            // A reset is a close too (a refused session may be reset rather than shut down).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(n),
            Err(_) => return None,
        }
    }
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
    // Removing the old secret closed the transports that proved it (the first one, with the
    // session opened before the rotation): they no longer authenticate.
    assert_eq!(read_to_end_within(&mut c, Duration::from_secs(3)), Some(0));
    // Its slot redials with the new secret: all three are up again.
    wait_peers_up(&admin_i, 3);
    let mut n = chain.client();
    roundtrip(&mut n, b"rotated");
    assert_eq!(
        (auth_failures(&admin_i), auth_failures(&admin_e)),
        (0.0, 0.0)
    );
}

/// A secret changed on one node only: that node's transports, verified by the secret it
/// dropped, close, and the new ones fail at the other node.
#[test]
fn a_secret_changed_on_one_node_closes_its_transports_and_new_ones_fail() {
    let Open {
        chain,
        bus,
        admin_e,
        session: mut c,
        ..
    } = open_chain();

    let ingress = ingress_with(&bus, &quoted(NEW_SECRET), 1);
    reload(&chain, &chain.ingress, "ingress.toml", &ingress, "ok", 1.0);
    assert_eq!(read_to_end_within(&mut c, Duration::from_secs(3)), Some(0));
    assert!(
        wait_for(Duration::from_secs(5), || auth_failures(&admin_e) >= 1.0),
        "no auth failure counted at the egress: {}\n{}",
        chain.egress.stderr(),
        chain.ingress.stderr()
    );
    let mut refused = chain.client();
    let _ = std::io::Write::write_all(&mut refused, b"x");
    assert_eq!(
        read_to_end_within(&mut refused, Duration::from_secs(4)),
        Some(0),
        "a session crossed with a secret the egress does not hold"
    );
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
