//! CONTRACT section 6, "Several links": with `[bus] multilink = true` at both ends and two
//! transports to the peer, a session survives one of them being reset in the middle of a
//! 64 MiB transfer, and the client gets every byte exactly; with `multilink = false` the same
//! cut ends the session, which shows the test cuts the transport the session was on.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use busway_test_support::rst::{rst_forward, RstForward};
use common::*;

const TOTAL: usize = 64 << 20;

/// An echo backend behind an egress, and an ingress dialling it twice through a forwarder
/// that can reset one of the two transports.
fn chain(multilink: bool) -> (Proc, Proc, RstForward, backends::Backend, TempDir) {
    let backend = backends::echo();
    let dir = TempDir::new("multilink");
    let bus = format!("[bus]\nmultilink = {multilink}\n");
    let egress = Proc::run_toml(
        &dir,
        "e.toml",
        &egress_toml(&backend.url(), "").replace("[bus]\n", &bus),
    );
    let fwd = rst_forward(&busway_test_support::hostport(&egress.url("bus")));
    let cfg = ingress_toml(&fwd.url, "")
        .replace("[bus]\n", &format!("{bus}connections_per_peer = 2\n"))
        .replace("connect_timeout = \"1s\"", "connect_timeout = \"3s\"");
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    wait_peers_up(&ingress.addr("admin"), 2);
    (egress, ingress, fwd, backend, dir)
}

/// What a client got back of 64 MiB it sent through the echo, with one transport reset once
/// a quarter came back; the longest wait between two reads after the reset.
fn transfer_with_a_reset(ingress: &Proc, fwd: &RstForward) -> (Vec<u8>, Duration) {
    let data = backends::pattern(TOTAL);
    let mut c = connect(&ingress.addr("chat"));
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        for chunk in sent.chunks(64 * 1024) {
            if w.write_all(chunk).is_err() {
                return;
            }
        }
        let _ = w.shutdown(Shutdown::Write);
    });
    let mut got = Vec::with_capacity(TOTAL);
    let mut buf = vec![0u8; 256 * 1024];
    let mut reset_at = None;
    let mut last = Instant::now();
    let mut stall = Duration::ZERO;
    loop {
        let n = match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        got.extend_from_slice(&buf[..n]);
        if reset_at.is_some() {
            stall = stall.max(last.elapsed());
        }
        last = Instant::now();
        if reset_at.is_none() && got.len() >= TOTAL / 4 {
            let i = fwd.reset_busiest();
            eprintln!("reset transport {i} of {:?} bytes", fwd.bytes());
            reset_at = Some(Instant::now());
            last = Instant::now();
        }
    }
    let _ = writer.join();
    (got, stall)
}

#[test]
fn a_multilink_session_survives_a_transport_reset_mid_transfer() {
    let (_egress, ingress, fwd, _backend, _dir) = chain(true);
    let (got, stall) = transfer_with_a_reset(&ingress, &fwd);
    eprintln!("longest wait between reads after the reset: {stall:?}");
    assert_eq!(got.len(), TOTAL, "{}", ingress.stderr());
    assert!(got == backends::pattern(TOTAL), "the bytes differ");
    // Both transports carried the session before the reset.
    let bytes = fwd.bytes();
    assert!(
        bytes.iter().filter(|b| **b > (TOTAL / 16) as u64).count() >= 2,
        "{bytes:?}"
    );
    assert!(
        ingress
            .stderr()
            .contains("multi-link session lost a transport"),
        "{}",
        ingress.stderr()
    );
}

#[test]
fn without_multilink_the_same_reset_ends_the_session() {
    let (_egress, ingress, fwd, _backend, _dir) = chain(false);
    let (got, _) = transfer_with_a_reset(&ingress, &fwd);
    assert!(
        got.len() < TOTAL,
        "all {} bytes came back: the reset missed the session's transport",
        got.len()
    );
    assert!(
        got[..] == backends::pattern(got.len())[..],
        "what came is exact"
    );
}

/// A peer that breaks the multi-link rules at a node (CONTRACT section 6, bad input): a second
/// carrier on a transport the session has one on, and a join for no session, are refused and
/// harm nothing; an acknowledgement of bytes the node never sent costs the peer its transport,
/// logged and counted as `protocol`.
#[test]
fn a_peer_breaking_the_multilink_rules_is_refused_then_closed() {
    use busway_proto::{Config, OpenParams, Piece, ResetCode, StreamError};
    use common::peer::FakePeer;

    let backend = backends::echo();
    let dir = TempDir::new("multilink-hostile");
    let egress = Proc::run_toml(
        &dir,
        "e.toml",
        &egress_toml(&backend.url(), "").replace("[bus]\n", "[bus]\nmultilink = true\n"),
    );
    let cfg = Config {
        node: "hostile".into(),
        secret: Some(SECRET.as_bytes().to_vec()),
        multilink: true,
        ..Config::default()
    };
    let bus = busway_test_support::hostport(&egress.url("bus"));
    let mut p = FakePeer::established(&bus, cfg);
    assert!(p.conn.multilink(), "the node announced multilink");
    let params = OpenParams {
        service: "chat".into(),
        ..OpenParams::default()
    };
    let first = p.conn.open_carrier(params.clone(), [5; 16], false).unwrap();
    p.flush();
    // The node acknowledges a new session at once: it exists there.
    assert!(
        wait_for(Duration::from_secs(3), || {
            p.exchange();
            p.conn.take_ack(first) == Some((0, false))
        }),
        "{}",
        egress.stderr()
    );
    let twice = p.conn.open_carrier(params.clone(), [5; 16], true).unwrap();
    let stranger = p.conn.open_carrier(params, [6; 16], true).unwrap();
    p.flush();
    for id in [twice, stranger] {
        let refused = |p: &mut FakePeer| {
            p.exchange();
            matches!(
                p.conn.read_piece(id, 10),
                Err(StreamError::Reset {
                    code: ResetCode::Refused,
                    ..
                })
            )
        };
        assert!(wait_for(Duration::from_secs(3), || refused(&mut p)), "{id}");
    }
    // The session itself still works: the backend's echo comes back on its carrier.
    let ping = Piece {
        offset: 0,
        payload: bytes::Bytes::from_static(b"ping"),
        fin: false,
    };
    p.conn.send_piece(first, ping).unwrap();
    p.flush();
    let mut echoed = Vec::new();
    assert!(wait_for(Duration::from_secs(3), || {
        p.exchange();
        while let Ok(piece) = p.conn.read_piece(first, usize::MAX) {
            echoed.extend_from_slice(&piece.payload);
        }
        echoed == b"ping"
    }));
    // The node sent 4 bytes: acknowledging 1,000 is a lie that costs the transport.
    p.conn.send_ack(first, 1000, false).unwrap();
    p.flush();
    assert!(p.closed_within(Duration::from_secs(3)).is_some());
    let logged = |line: &str| egress.wait_stderr(line, Duration::from_secs(3));
    assert!(logged("the peer broke the protocol"), "{}", egress.stderr());
    assert!(
        logged("acknowledgement of 1000 bytes when 4 were sent"),
        "{}",
        egress.stderr()
    );
    assert!(wait_for(Duration::from_secs(2), || metric(
        &egress.addr("admin"),
        "busway_frames_rejected_total{reason=\"protocol\"}"
    ) == Some(1.0)));
}
