//! Issue 12's handshake flood, end to end: for a few seconds, bus connections that run a real
//! handshake with a wrong secret (Hello, Challenge, an Auth whose proof fails) hit the egress
//! from four threads as fast as it answers, while a session rides the chain's established
//! transport. Every failure is counted, the log keeps to about a line a second that says how
//! many it left out, and the session keeps getting its answers throughout
//! (`bench/flood` measures the rate it keeps).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_proto::Config;
use common::peer::FakePeer;
use common::*;

/// How long the flood lasts: long enough for the log's second line.
const FLOOD: Duration = Duration::from_millis(2500);

/// What the log lines say they left out, in all.
fn left_out(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.split("suppressed=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn auth_failures(admin: &str) -> f64 {
    metric(admin, "busway_handshake_failures_total{reason=\"auth\"}").unwrap_or(0.0)
}

#[test]
fn a_flood_of_failed_handshakes_is_counted_logged_once_a_second_and_starves_no_session() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let admin = chain.egress.addr("admin");
    let bus = chain.egress.addr("bus");
    let mut c = chain.client();
    roundtrip(&mut c, b"before");
    let before = auth_failures(&admin);

    let refused = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (bus, refused) = (bus.clone(), refused.clone());
            std::thread::spawn(move || {
                let wrong = Config {
                    node: "flood".into(),
                    secret: Some(b"not-the-secret-of-this-chain".to_vec()),
                    ..Config::default()
                };
                // Bounded by count as well as by time.
                for _ in 0..5_000 {
                    if start.elapsed() >= FLOOD {
                        break;
                    }
                    let mut p = FakePeer::start(&bus, wrong.clone());
                    assert!(
                        p.closed_within(Duration::from_secs(5)).is_some(),
                        "a handshake with a wrong secret was not closed"
                    );
                    assert!(!p.conn.is_established());
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // The session on the established transport, meanwhile.
    let (mut answered, mut slowest) = (0usize, Duration::ZERO);
    while start.elapsed() < FLOOD {
        let t = Instant::now();
        roundtrip(&mut c, b"during the flood");
        slowest = slowest.max(t.elapsed());
        answered += 1;
    }
    for f in flooders {
        f.join().expect("flood thread");
    }
    let n = refused.load(Ordering::Relaxed);
    assert!(n >= 100, "only {n} failed handshakes in {FLOOD:?}");
    assert!(
        answered >= 10 && slowest < Duration::from_secs(1),
        "the session answered {answered} times during the flood, the slowest in {slowest:?}"
    );

    // Every failure counted, by the node that checked the proof.
    assert!(
        wait_for(Duration::from_secs(3), || auth_failures(&admin)
            == before + n as f64),
        "{n} refused, counted {}",
        auth_failures(&admin) - before
    );
    // One more failure once the second is over, so that its line counts what the last
    // second left out.
    std::thread::sleep(Duration::from_millis(1100));
    let wrong = Config {
        secret: Some(b"not-the-secret-of-this-chain".to_vec()),
        ..Config::default()
    };
    assert!(FakePeer::start(&bus, wrong)
        .closed_within(Duration::from_secs(5))
        .is_some());
    let n = n + 1;
    // About one line a second, the later ones saying how many they left out.
    let mut lines = Vec::new();
    let secs = start.elapsed().as_secs() as usize;
    wait_for(Duration::from_secs(3), || {
        let log = chain.egress.stderr();
        lines = log
            .lines()
            .filter(|l| l.contains("bus handshake failed"))
            .map(str::to_owned)
            .collect();
        left_out(&lines) as usize + lines.len() >= n
    });
    assert!(
        (2..=secs + 2).contains(&lines.len()),
        "{} lines for {n} failures over {secs} s:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("reason=handshake failed: auth")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(
        left_out(&lines) as usize + lines.len(),
        n,
        "the lines and what they left out account for every failure:\n{}",
        lines.join("\n")
    );

    roundtrip(&mut c, b"after");
    roundtrip(&mut chain.client(), b"a new session");
}
