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
