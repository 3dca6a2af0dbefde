//! CONTRACT 9.6 and 9.7: bytes that are not the bus protocol close only their own transport,
//! with a logged reason and a counted metric; secrets never leak.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Writes `bytes` to the egress bus port and expects the node to close the connection because
/// of them: within a second, far below the 5 s handshake timeout that would close it anyway, and
/// with an EOF or a reset, not a read timeout.
fn send_and_expect_close(bus: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(bus.trim_start_matches("tcp://")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let start = Instant::now();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    // The node may answer with its own handshake first; it must then close.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("not closed after {:?}: {bytes:02x?}", start.elapsed())
            }
            Err(_) => break,
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn garbage_wrong_version_and_oversize_close_only_that_transport() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let bus = chain.egress.url("bus");
    let admin = chain.egress.addr("admin");
    let mut c = chain.client();
    roundtrip(&mut c, b"before");

    send_and_expect_close(&bus, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    send_and_expect_close(&bus, &[0x07, 0x05, 1, 2, 3, 4, 5, 0, 0, 0, 0]);
    let v = busway_proto::VERSION as u8;
    send_and_expect_close(&bus, &[v, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut bad_check = vec![v, 0x02, 0x08, 0x01];
    bad_check.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    send_and_expect_close(&bus, &bad_check);

    assert!(
        wait_for(Duration::from_secs(3), || {
            metric(&admin, "busway_frames_rejected_total{reason=\"version\"}").is_some()
                && metric(&admin, "busway_frames_rejected_total{reason=\"oversize\"}").is_some()
                && metric(&admin, "busway_frames_rejected_total{reason=\"checksum\"}").is_some()
        }),
        "{}",
        http::get(&admin, "/metrics").body
    );
    // The garbage counts as a rejected frame (malformed or version) or a failed handshake.
    assert!(
        chain.egress.wait_stderr("version", Duration::from_secs(3)),
        "no logged reason:\n{}",
        chain.egress.stderr()
    );
    // The real session and the real transport are untouched.
    roundtrip(&mut c, b"after");
    let mut c2 = chain.client();
    roundtrip(&mut c2, b"new session");
}

#[test]
fn a_silent_bus_connection_is_closed_after_the_handshake_timeout() {
    let backend = backends::echo();
    let dir = TempDir::new("hs");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_toml(&backend.url(), ""));
    let mut s = TcpStream::connect(egress.addr("bus")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
    assert!(wait_for(Duration::from_secs(2), || metric(
        &egress.addr("admin"),
        "busway_handshake_failures_total{reason=\"timeout\"}"
    ) == Some(1.0)));
}

#[test]
fn a_secret_mismatch_carries_no_session_and_never_leaks_the_secret() {
    let backend = backends::echo();
    let dir = TempDir::new("auth");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_toml(&backend.url(), ""));
    let wrong = ingress_toml(&egress.url("bus"), "").replace(SECRET, "not-the-secret-xyz");
    let ingress = Proc::run_toml(&dir, "i.toml", &wrong);
    let admin_e = egress.addr("admin");
    // The egress checks the ingress's proof first and tells it why it hangs up (GoAway), so
    // both sides count the failure as `auth` and log it.
    let admin_i = ingress.addr("admin");
    for admin in [&admin_i, &admin_e] {
        assert!(wait_for(Duration::from_secs(5), || metric(
            admin,
            "busway_handshake_failures_total{reason=\"auth\"}"
        )
        .is_some_and(|v| v >= 1.0)));
    }
    assert!(
        wait_for(Duration::from_secs(2), || ingress.stderr().contains("auth")),
        "{}",
        ingress.stderr()
    );
    let mut c = connect(&ingress.addr("chat"));
    let _ = c.write_all(b"hello?");
    let mut buf = [0u8; 16];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "a session crossed a failed handshake"
    );
    assert_eq!(backend.accepted(), 0);
    // Secrets appear nowhere: logs, admin API, check output.
    for text in [
        egress.stderr(),
        ingress.stderr(),
        http::get(&admin_e, "/v1/peers").body,
        http::get(&admin_e, "/v1/services").body,
        http::get(&admin_e, "/metrics").body,
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("not-the-secret-xyz"),
            "leak in:\n{text}"
        );
    }
    let (code, out, _) = busway_test_support::proc::run_to_end(
        &["check", "-c", dir.path("e.toml").to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0);
    assert!(!out.contains(SECRET), "{out}");
    assert!(out.contains("redacted"), "{out}");
}
