//! Pings, round-trip times and dead peers, on the fake clock.

use std::time::Duration;

use busway_proto::frame::Body;
use busway_proto::{Event, Frame, ProtoError};

use crate::harness::{Pair, Who};

#[test]
fn ping_pong_measures_rtt() {
    let mut p = Pair::established();
    // Nothing to do until the first ping is due.
    let due = p.i.conn.poll_timeout().unwrap();
    assert_eq!(due, p.now + Duration::from_millis(500));
    p.now = due;
    p.i.conn.handle_timeout(p.now).unwrap();
    assert!(p.i.conn.wants_transmit());
    p.now += Duration::from_millis(30);
    assert!(p.step(Who::I));
    p.now += Duration::from_millis(20);
    assert!(p.step(Who::A));
    assert!(p.i.events.contains(&Event::Rtt(Duration::from_millis(50))));
    assert_eq!(p.i.conn.rtt(), Some(Duration::from_millis(50)));
}

#[test]
fn silent_peer_is_declared_dead() {
    let mut p = Pair::established();
    // While both talk, nobody dies however long it runs.
    p.advance(Duration::from_secs(10), true);
    assert!(p.i.error.is_none() && p.a.error.is_none());
    let rtts =
        p.i.events
            .iter()
            .filter(|e| matches!(e, Event::Rtt(_)))
            .count();
    assert!(rtts >= 19, "a pong per interval, got {rtts}");
    // Now the acceptor's bytes stop arriving.
    let last_heard = p.now;
    p.advance(Duration::from_millis(1499), false);
    assert!(p.i.error.is_none());
    p.advance(Duration::from_millis(1), false);
    assert_eq!(p.i.error, Some(ProtoError::DeadPeer));
    assert_eq!(p.now - last_heard, Duration::from_millis(1500));
}

#[test]
fn pong_with_a_timepoint_we_never_sent_is_ignored() {
    let mut p = Pair::established();
    let pong = Frame::new(Body::Pong(busway_proto::Pong {
        timepoint_us: u64::MAX,
    }));
    assert!(p.inject(Who::I, &pong).is_ok());
    p.i.poll_events();
    assert!(!p.i.events.iter().any(|e| matches!(e, Event::Rtt(_))));
}
