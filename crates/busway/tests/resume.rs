//! 0-RTT end to end (CONTRACT section 10): an ingress restarted with `state_dir` resumes its
//! transport with a ticket it saved at its clean stop, and the session waiting for that
//! transport rides the first flight — it reaches the backend before the egress has said a
//! single byte to the restarted ingress. With `resumption = false` the same session needs the
//! egress's Challenge first, and gets nowhere while the egress's answers are held back.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use busway_test_support::backends::recorder;
use busway_test_support::forward::gated_forward;
use common::{connect, egress_toml, ingress_toml, metric, wait_for, Proc, TempDir};

/// An ingress through `peer_url` that keeps its state in `dir`, resuming or not.
fn ingress_cfg(peer_url: &str, dir: &TempDir, resumption: bool) -> String {
    ingress_toml(peer_url, "")
        .replace(
            "[node]\n",
            &format!("[node]\nstate_dir = \"{}\"\n", dir.0.display()),
        )
        .replace("[bus]\n", &format!("[bus]\nresumption = {resumption}\n"))
        // Longer than the control waits with the egress's answers held back.
        .replace("connect_timeout = \"1s\"", "connect_timeout = \"10s\"")
}

/// What a restarted ingress's first session did while the egress could not answer it.
struct Restarted {
    /// The backend had the session's first bytes before the egress said a byte.
    reached_backend_unanswered: bool,
    /// Bytes the egress sent the restarted ingress by then (must be 0: the gate was shut).
    answered: u64,
    egress: Proc,
    ingress: Proc,
}

/// Runs an ingress once (a session, then a clean stop that saves its tickets), then again
/// with `resume_after`, with the egress's answers held back, and sends one session's first
/// bytes at once.
fn restart_and_send(resume_after: bool) -> Restarted {
    let (backend, rec) = recorder(b"pong");
    let dir = TempDir::new("resume");
    let egress = Proc::run_toml(&dir, "egress.toml", &egress_toml(&backend.url(), ""));
    let gate = gated_forward(&egress.addr("bus"));

    let mut first = Proc::run_toml(&dir, "i1.toml", &ingress_cfg(&gate.url, &dir, true));
    let mut c = connect(&first.addr("chat"));
    c.write_all(b"one").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    drop(c);
    first.signal(SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());
    let saved = dir.0.join("tickets.state");
    assert!(
        first.wait_stderr("held tickets saved", Duration::from_secs(3)),
        "{}",
        first.stderr()
    );
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the tickets file holds keys");
    let before = rec.lock().unwrap().bytes.len();

    gate.open.store(false, Ordering::Relaxed);
    let answered_before = gate.answered.load(Ordering::Relaxed);
    let ingress = Proc::run_toml(&dir, "i2.toml", &ingress_cfg(&gate.url, &dir, resume_after));
    assert!(!saved.exists(), "read at start, then removed");
    let mut c = connect(&ingress.addr("chat"));
    c.write_all(b"two").unwrap();
    let limit = Duration::from_secs(if resume_after { 10 } else { 2 });
    let reached = wait_for(limit, || {
        rec.lock().unwrap().bytes[before..].starts_with(b"two")
    });
    let answered = gate.answered.load(Ordering::Relaxed) - answered_before;
    // Now let the egress answer: the session completes either way.
    gate.open.store(true, Ordering::Relaxed);
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    Restarted {
        reached_backend_unanswered: reached,
        answered,
        egress,
        ingress,
    }
}

const SIGTERM: i32 = 15;

#[test]
fn a_restarted_ingress_resumes_and_its_first_session_rides_the_first_flight() {
    let r = restart_and_send(true);
    assert!(
        r.reached_backend_unanswered,
        "the session waited for the egress: {}\n{}",
        r.ingress.stderr(),
        r.egress.stderr()
    );
    assert_eq!(r.answered, 0, "the gate let bytes through");
    let egress_admin = r.egress.addr("admin");
    assert_eq!(
        metric(&egress_admin, "busway_handshakes_total{kind=\"resumed\"}"),
        Some(1.0),
        "{}",
        r.egress.stderr()
    );
    assert_eq!(
        metric(
            &r.ingress.addr("admin"),
            "busway_handshakes_total{kind=\"resumed\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn without_resumption_the_first_session_waits_for_the_egress() {
    let r = restart_and_send(false);
    assert!(
        !r.reached_backend_unanswered,
        "a full handshake cannot carry a session before the egress's Challenge"
    );
    assert_eq!(
        metric(
            &r.egress.addr("admin"),
            "busway_handshakes_total{kind=\"full\"}"
        ),
        Some(2.0)
    );
}
