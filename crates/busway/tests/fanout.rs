//! One-to-N sessions (CONTRACT section 3, modes): the half-duplex latch, full duplex, at an
//! egress over backends and at an ingress over peers.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn half_duplex_the_first_answer_wins_and_the_others_never_reach_the_client() {
    let silent = backends::close_silently();
    let slow = backends::answer_after(Duration::from_millis(400), b"slow");
    let fast = backends::answer_after(Duration::from_millis(50), b"fast");
    let chain = fan_chain(&[silent.url(), slow.url(), fast.url()], "half-duplex", "");
    let mut c = chain.client();
    c.write_all(b"hello all").unwrap();
    assert_eq!(read_n(&mut c, 4), b"fast");
    // Latched: from now on the session is one-to-one with the winner, which echoes.
    std::thread::sleep(Duration::from_millis(600));
    roundtrip(&mut c, b"only the winner");
    c.shutdown(Shutdown::Write).unwrap();
    let rest = read_all(&mut c);
    assert!(!String::from_utf8_lossy(&rest).contains("slow"), "{rest:?}");
    assert_eq!(slow.accepted(), 1);
    assert_eq!(fast.accepted(), 1);
}

#[test]
fn a_server_that_speaks_first_wins_before_the_client_sends() {
    let silent = backends::silent();
    let banner = backends::banner(b"HELLO\n");
    let chain = fan_chain(&[silent.url(), banner.url()], "half-duplex", "");
    let mut c = chain.client();
    assert_eq!(read_n(&mut c, 6), b"HELLO\n");
    roundtrip(&mut c, b"echoed by the banner server");
}

#[test]
fn half_duplex_when_every_target_closes_silently_the_client_gets_eof() {
    let a = backends::close_silently();
    let b = backends::close_silently();
    let chain = fan_chain(&[a.url(), b.url()], "half-duplex", "");
    let mut c = chain.client();
    let _ = c.write_all(b"anyone?");
    let start = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn latch_timeout_closes_a_session_nobody_answered() {
    let a = backends::silent();
    let b = backends::silent();
    let chain = fan_chain(
        &[a.url(), b.url()],
        "half-duplex",
        "latch_timeout = \"300ms\"\n",
    );
    let mut c = chain.client();
    c.write_all(b"hello?").unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let admin = chain.egress.addr("admin");
    assert!(wait_for(Duration::from_secs(2), || metric(
        &admin,
        "busway_sessions_total{service=\"chat\",outcome=\"timeout\"}"
    ) == Some(1.0)));
}

#[test]
fn full_duplex_every_target_answers_and_the_session_ends_when_all_have_closed() {
    let targets: Vec<_> = (0..3).map(|_| backends::echo()).collect();
    let urls: Vec<String> = targets.iter().map(|b| b.url()).collect();
    let chain = fan_chain(&urls, "full-duplex", "");
    let mut c = chain.client();
    c.write_all(b"ping!").unwrap();
    assert_eq!(read_n(&mut c, 15), b"ping!ping!ping!");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"");
    for t in &targets {
        assert_eq!(t.accepted(), 1);
    }
}

#[test]
fn full_duplex_a_failing_target_leaves_the_others_running() {
    let dead = backends::close_silently();
    let a = backends::echo();
    let b = backends::echo();
    let chain = fan_chain(&[dead.url(), a.url(), b.url()], "full-duplex", "");
    let mut c = chain.client();
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"twice").unwrap();
    assert_eq!(read_n(&mut c, 10), b"twicetwice");
}

#[test]
fn fan_out_at_the_ingress_over_two_egress_nodes() {
    let fast = backends::answer_after(Duration::from_millis(30), b"from-fast");
    let slow = backends::answer_after(Duration::from_millis(400), b"from-slow");
    let dir = TempDir::new("fanin");
    let e1 = Proc::run_toml(&dir, "e1.toml", &egress_toml(&fast.url(), ""));
    let e2 = Proc::run_toml(&dir, "e2.toml", &egress_toml(&slow.url(), ""));
    let cfg = ingress_toml(&e1.url("bus"), "").replace(
        &format!("peers = [\"{}\"]", e1.url("bus")),
        &format!("peers = [\"{}\", \"{}\"]", e1.url("bus"), e2.url("bus")),
    );
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    let admin = ingress.addr("admin");
    wait_peers_up(&admin, 2);
    assert!(http::get(&admin, "/v1/services")
        .body
        .contains("half-duplex"));
    let mut c = connect(&ingress.addr("chat"));
    c.write_all(b"race").unwrap();
    assert_eq!(read_n(&mut c, 9), b"from-fast");
    std::thread::sleep(Duration::from_millis(600));
    roundtrip(&mut c, b"after the latch");
    assert_eq!(slow.accepted(), 1, "the slow egress was asked too");
}

#[test]
fn two_hundred_fifty_six_targets_in_one_fan_out_session() {
    let targets: Vec<_> = (0..256).map(|_| backends::echo()).collect();
    let urls: Vec<String> = targets.iter().map(|b| b.url()).collect();
    let chain = fan_chain(&urls, "full-duplex", "");
    let mut c = chain.client();
    c.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 256), vec![b'x'; 256]);
    assert!(targets.iter().all(|t| t.accepted() == 1));
}

/// A full-duplex target that reads nothing holds the whole session back (the slowest target
/// bounds it), and neither node buffers more than a few stream windows for it: measured from
/// each node's memory before the session, not from a sample taken after the damage.
#[test]
fn the_slowest_target_bounds_the_session_and_memory_stays_bounded() {
    let stuck = backends::silent();
    let echo = backends::echo();
    let chain = fan_chain(&[stuck.url(), echo.url()], "full-duplex", "");
    let mut warm = chain.client();
    roundtrip(&mut warm, b"warm");
    let (base_e, base_i) = (chain.egress.rss_kib(), chain.ingress.rss_kib());
    let mut c = chain.client();
    let mut w = c.try_clone().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = sent.clone();
    std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..64 {
            if w.write_all(&chunk).is_err() {
                return;
            }
            s.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    // Drain what the echo target sends back, so only the stuck target can hold things up.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(std::io::Read::read(&mut c, &mut buf), Ok(n) if n > 0) {}
    });
    std::thread::sleep(Duration::from_secs(2));
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        sent < 64 << 20,
        "64 MiB went through although one target reads nothing"
    );
    let grown_e = chain.egress.rss_kib().saturating_sub(base_e);
    let grown_i = chain.ingress.rss_kib().saturating_sub(base_i);
    eprintln!("stuck fan-out: {sent} bytes in; egress +{grown_e} KiB, ingress +{grown_i} KiB");
    // Resident memory moves with the allocator's arenas; a few windows' worth is the bound.
    for (node, grown) in [("egress", grown_e), ("ingress", grown_i)] {
        assert!(grown < 4 * 1024, "{node} grew by {grown} KiB");
    }
    // What the transport holds, exactly: at most one stream window each way.
    let window = f64::from(busway_proto::DEFAULT_STREAM_WINDOW);
    for (admin, peer) in [
        (chain.egress.addr("admin"), "ingress"),
        (chain.ingress.addr("admin"), "egress"),
    ] {
        for dir in ["in", "out"] {
            let held = metric(
                &admin,
                &format!("busway_peer_buffered_bytes{{peer=\"{peer}\",direction=\"{dir}\"}}"),
            );
            assert!(held.is_some_and(|b| b <= window), "{peer} {dir}: {held:?}");
        }
    }
}

#[test]
fn fan_out_composes_an_ingress_fan_over_egress_fans() {
    let dir = TempDir::new("compose");
    // Two egress nodes, each fanning out in full duplex to two echo servers.
    let echoes: Vec<_> = (0..4).map(|_| backends::echo()).collect();
    let mut eg = Vec::new();
    for pair in echoes.chunks(2) {
        let cfg = egress_toml(&pair[0].url(), "mode = \"full-duplex\"\n").replace(
            &format!("backends = [\"{}\"]", pair[0].url()),
            &format!("backends = [\"{}\", \"{}\"]", pair[0].url(), pair[1].url()),
        );
        eg.push(Proc::run_toml(&dir, &format!("e{}.toml", eg.len()), &cfg));
    }
    let cfg = ingress_toml(&eg[0].url("bus"), "mode = \"full-duplex\"\n").replace(
        &format!("peers = [\"{}\"]", eg[0].url("bus")),
        &format!(
            "peers = [\"{}\", \"{}\"]",
            eg[0].url("bus"),
            eg[1].url("bus")
        ),
    );
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    let admin = ingress.addr("admin");
    wait_peers_up(&admin, 2);
    let mut c = connect(&ingress.addr("chat"));
    c.write_all(b"<4>").unwrap();
    // One chunk each from the four servers, two hops of fan-out away.
    assert_eq!(read_n(&mut c, 12), b"<4><4><4><4>");
    assert!(echoes.iter().all(|e| e.accepted() == 1));
}

#[test]
fn one_to_one_round_robin_spreads_over_three_backends() {
    let targets: Vec<_> = (0..3).map(|_| backends::echo()).collect();
    let urls: Vec<String> = targets.iter().map(|b| b.url()).collect();
    let chain = fan_chain(&urls, "one-to-one", "");
    for i in 0..9 {
        let mut c = chain.client();
        roundtrip(&mut c, format!("rr {i}").as_bytes());
    }
    for t in &targets {
        assert_eq!(t.accepted(), 3);
    }
}
