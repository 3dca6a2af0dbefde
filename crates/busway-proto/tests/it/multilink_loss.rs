//! Multi-link sessions losing transports: at every point of a transfer, loudly or silently,
//! all but one of three, with the fin in flight, and with random speeds and cuts. Every byte
//! arrives exactly once, in order, both ways, and the retransmit buffer never holds more than
//! the window.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::links::Links;
use crate::streams::pattern;
use busway_proto::{LinkId, BLOCK};

const W: u32 = 256 * 1024;

/// Runs a session with `cuts` (tick, transport) applied; returns it settled.
fn session(n: usize, chunks: &[usize], up: &[u8], down: &[u8], cuts: &[(usize, LinkId)]) -> Links {
    run_with_cuts(n, chunks, up, down, cuts, false)
}

/// [`session`] with the ticks counted from when every transport joined the session (before,
/// losing the first one loses the session: it is its only transport).
fn joined_session(
    n: usize,
    chunks: &[usize],
    up: &[u8],
    down: &[u8],
    cuts: &[(usize, LinkId)],
) -> Links {
    run_with_cuts(n, chunks, up, down, cuts, true)
}

fn run_with_cuts(
    n: usize,
    chunks: &[usize],
    up: &[u8],
    down: &[u8],
    cuts: &[(usize, LinkId)],
    after_join: bool,
) -> Links {
    let mut l = Links::new(n, W);
    for (p, c) in l.pairs.iter_mut().zip(chunks) {
        p.chunk = *c;
    }
    l.send_both(up, down);
    let joined = |l: &Links| l.ends[0].ms.as_ref().is_some_and(|m| m.links().len() == n);
    while after_join && !joined(&l) {
        assert!(l.tick(), "the transports never joined");
    }
    let last = cuts.iter().map(|c| c.0).max().unwrap_or(0);
    for t in 0..100_000_000usize {
        for &(at, link) in cuts {
            if at == t {
                l.cut(link);
            }
        }
        if !l.tick() && t >= last {
            return l;
        }
    }
    unreachable!("the session never settles")
}

/// How many ticks the transfer takes with nothing cut (checked exact): the cut points.
fn uncut_ticks(chunks: &[usize], up: &[u8], down: &[u8]) -> usize {
    let mut l = Links::new(chunks.len(), W);
    for (p, c) in l.pairs.iter_mut().zip(chunks) {
        p.chunk = *c;
    }
    l.send_both(up, down);
    let total = (1..).find(|_| !l.tick()).unwrap_or(0);
    exact(&l, up, down, "no cut");
    total
}

/// Checks the exact bytes both ways and a clean end; returns the bytes sent twice.
fn exact(l: &Links, up: &[u8], down: &[u8], what: &str) -> u64 {
    assert!(
        l.ends[1].got == up,
        "{what}: {} of {} bytes up",
        l.ends[1].got.len(),
        up.len()
    );
    assert!(
        l.ends[0].got == down,
        "{what}: {} of {} bytes down",
        l.ends[0].got.len(),
        down.len()
    );
    for e in &l.ends {
        assert!(e.fin && e.done, "{what}: fin {} done {}", e.fin, e.done);
        assert!(e.failed.is_empty() && e.reset.is_none(), "{what}");
        assert!(
            e.peak_unacked <= u64::from(W) && e.peak_buffered <= u64::from(W),
            "{what}"
        );
    }
    let sent: u64 = l.ends.iter().flat_map(|e| e.sent.iter()).sum();
    sent - (up.len() + down.len()) as u64
}

#[test]
fn losing_a_transport_at_every_point_of_a_transfer_loses_nothing() {
    let up = pattern(5 * BLOCK as usize + 123);
    let down = pattern(2 * BLOCK as usize + 7);
    let chunks = [2048, 2048];
    let total = uncut_ticks(&chunks, &up, &down);
    assert!(total > 100, "{total} ticks");
    let mut resent_runs = 0;
    for at in 0..=total {
        for link in 0..2 {
            let l = session(2, &chunks, &up, &down, &[(at, link)]);
            let what = format!("transport {link} cut at tick {at} of {total}");
            if l.ends[0].ms.as_ref().is_some_and(|m| m.links().is_empty()) {
                // The session's only transport, before the other one joined (a round trip
                // after the open): the session is lost with it.
                assert!(link == 0 && at <= 2, "{what}");
                assert!(l.ends[1].got.len() < up.len(), "{what}");
                continue;
            }
            if exact(&l, &up, &down, &what) > 0 {
                resent_runs += 1;
            }
        }
    }
    eprintln!("{total} ticks, {resent_runs} of {} runs resent", 2 * total);
    // Most cuts fell while the cut transport had unacknowledged bytes, which went again.
    assert!(
        resent_runs > total,
        "{resent_runs} of {} runs resent",
        2 * total
    );
}

#[test]
fn byte_by_byte_cuts_lose_nothing() {
    let up = pattern(BLOCK as usize + 3000);
    let down = pattern(5000);
    let total = uncut_ticks(&[1, 1], &up, &down);
    let mut resent_runs = 0;
    let cuts = 24;
    for k in 1..=cuts {
        let at = total * k / (cuts + 1);
        for link in 0..2 {
            let l = session(2, &[1, 1], &up, &down, &[(at, link)]);
            let what = format!("transport {link} cut at byte step {at} of {total}");
            if exact(&l, &up, &down, &what) > 0 {
                resent_runs += 1;
            }
        }
    }
    eprintln!(
        "{total} byte steps, {resent_runs} of {} runs resent",
        2 * cuts
    );
    assert!(resent_runs >= cuts / 2, "{resent_runs} runs resent");
}

#[test]
fn a_session_survives_losing_any_two_of_three_transports() {
    let up = pattern(9 * BLOCK as usize + 11);
    let down = pattern(4 * BLOCK as usize);
    let chunks = [3000, 5000, 7000];
    for first in 0..3 {
        for second in 0..3 {
            if first == second {
                continue;
            }
            for (a, b) in [(8, 8), (8, 30), (20, 60), (45, 46)] {
                let l = joined_session(3, &chunks, &up, &down, &[(a, first), (b, second)]);
                let what = format!("transports {first} at {a} and {second} at {b}");
                exact(&l, &up, &down, &what);
                assert_eq!(l.ends[0].ms.as_ref().unwrap().links().len(), 1, "{what}");
            }
        }
    }
}

#[test]
fn the_fin_is_sent_again_when_its_transport_dies_before_delivering_it() {
    let mut resent_fin = false;
    for cut in 0..2 {
        let mut l = Links::new(2, W);
        l.ends[0].out = Bytes::from(pattern(BLOCK as usize + 10));
        l.run();
        assert_eq!(l.ends[1].got.len(), BLOCK as usize + 10);
        // The last bytes and the fin leave on one transport; cut that one, or the other.
        l.ends[0].out = Bytes::from(pattern(100));
        l.ends[0].finish = true;
        let before = l.ends[0].sent.clone();
        while l.ends[0].sent == before {
            l.tick();
        }
        let fin_link = (0..2).find(|&i| l.ends[0].sent[i] > before[i]).unwrap();
        let victim = if cut == 0 { fin_link } else { 1 - fin_link };
        l.cut(victim);
        l.ends[1].finish = true;
        l.run();
        assert!(
            l.ends[1].fin && l.ends[0].done && l.ends[1].done,
            "cut {victim}"
        );
        assert_eq!(l.ends[1].got.len(), BLOCK as usize + 110);
        resent_fin |= victim == fin_link && l.ends[0].sent.iter().sum::<u64>() > BLOCK + 110;
    }
    assert!(resent_fin, "the fin's own transport was cut once");
}

#[test]
fn a_silent_transport_is_found_dead_by_the_clock_and_its_bytes_go_again() {
    let up = pattern(4 << 20);
    let mut l = Links::new(2, W);
    l.send_both(&up, b"");
    for _ in 0..4 {
        l.tick();
    }
    l.blackhole(1);
    l.run();
    let stuck = l.ends[1].got.len();
    assert!(
        stuck < up.len(),
        "stalled at {stuck}: transport 1 held unacknowledged bytes"
    );
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while !l.ends[1].fin {
        assert!(waited < Duration::from_secs(3), "never recovered");
        l.advance(step, step);
        waited += step;
    }
    eprintln!(
        "stalled at {stuck} of {} bytes, recovered after {waited:?}",
        up.len()
    );
    // Found after the dead-peer delay (3 pings of 500 ms), not before.
    assert!(
        waited >= Duration::from_millis(1500) && waited <= Duration::from_millis(1700),
        "{waited:?}"
    );
    assert_eq!(l.ends[1].got, up);
    assert!(!l.up[1] && l.up[0]);
    assert_eq!(
        l.pairs[1].i.conn.error().map(|e| e.reason()),
        Some("dead_peer")
    );
}

#[test]
fn the_retransmit_buffer_never_holds_more_than_the_window() {
    let up = pattern(8 * W as usize);
    let mut l = Links::new(2, W);
    l.ends[0].out = Bytes::copy_from_slice(&up);
    l.ends[0].finish = true;
    l.ends[1].finish = true;
    l.ends[1].reads = false;
    l.run();
    let ms = l.ends[0].ms.as_mut().unwrap();
    assert_eq!(ms.unacked(), u64::from(W), "the window is full");
    assert_eq!(ms.capacity(), 0);
    assert_eq!(l.ends[1].ms.as_ref().unwrap().buffered(), u64::from(W));
    l.cut(0);
    l.run();
    assert_eq!(l.ends[0].ms.as_ref().unwrap().unacked(), u64::from(W));
    l.ends[1].reads = true;
    l.run();
    assert_eq!(l.ends[1].got, up);
    assert_eq!(l.ends[0].peak_unacked, u64::from(W));
    assert_eq!(l.ends[1].peak_buffered, u64::from(W));
    assert!(l.ends[0].done && l.ends[1].done);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn exactly_once_in_order_whatever_the_speeds_and_the_cuts(
        up_len in 0usize..400_000,
        down_len in 0usize..200_000,
        chunks in proptest::collection::vec(prop_oneof![1usize..64, 64usize..70_000], 3),
        cuts in proptest::collection::vec((0usize..200, 0usize..3), 0..3),
    ) {
        let (up, down) = (pattern(up_len), pattern(down_len));
        // Keep one transport: a session dies with its last one.
        let cuts: Vec<(usize, LinkId)> = cuts.into_iter().filter(|c| c.1 != 2).collect();
        let l = joined_session(3, &chunks, &up, &down, &cuts);
        exact(&l, &up, &down, &format!("cuts {cuts:?}, chunks {chunks:?}"));
    }
}
