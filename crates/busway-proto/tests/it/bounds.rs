//! What a connection holds stays bounded whatever the peer does: floods of control frames,
//! a peer that never reads, and any mix of streams, reads, releases and stops.

use std::time::Duration;

use busway_proto::frame::Body;
use busway_proto::{
    Config, Frame, GoAway, Open, Ping, ProtoError, StreamError, FLOOD_WINDOW, MAX_CONTROL_BACKLOG,
    MAX_PINGS_PER_WINDOW,
};
use proptest::prelude::*;

use crate::harness::{config, Pair, Who};

#[test]
fn pings_within_the_limit_are_answered_by_one_pong() {
    let mut p = Pair::established();
    for t in 0..u64::from(MAX_PINGS_PER_WINDOW) {
        p.inject(Who::A, &Frame::new(Body::Ping(Ping { timepoint_us: t })))
            .unwrap();
    }
    assert!(p.a.conn.wants_input());
    let mut frames = Vec::new();
    p.a.conn.poll_transmit(&mut frames, usize::MAX);
    assert_eq!(frames.len(), 1, "{frames:?}");
}

#[test]
fn a_ping_flood_fails_the_transport_but_a_steady_pinger_never_does() {
    let ping = |t| Frame::new(Body::Ping(Ping { timepoint_us: t }));
    // 256 pings a second, for ten seconds: still a ping every 4 ms, far above what a node sends.
    let mut p = Pair::established();
    for t in 0..2560u64 {
        if t % u64::from(MAX_PINGS_PER_WINDOW) == 0 {
            p.now += FLOOD_WINDOW;
        }
        p.inject(Who::A, &ping(t)).unwrap();
    }
    // One more within the same second is a flood.
    let mut p = Pair::established();
    for t in 0..u64::from(MAX_PINGS_PER_WINDOW) {
        p.inject(Who::A, &ping(t)).unwrap();
    }
    assert_eq!(p.inject(Who::A, &ping(0)), Err(ProtoError::Flood));
}

/// Opens after our GoAway are each refused with a Reset: a peer that keeps sending them and
/// never reads fills the control backlog, the driver stops reading it, and the silence that
/// follows ends the transport as a flood.
#[test]
fn opens_after_go_away_stop_input_at_the_control_bound_then_fail_as_a_flood() {
    let mut p = Pair::established();
    p.a.conn.go_away("draining");
    let mut id = 1;
    while p.a.conn.wants_input() {
        p.inject(
            Who::A,
            &Frame::new(Body::Open(Open {
                stream: id,
                service: "x".repeat(100),
                ..Open::default()
            })),
        )
        .unwrap();
        id += 2;
        assert!(id < 1_000_000, "the control backlog never filled");
    }
    // Each refusal is a Reset of at most 32 bytes: the bound, not less, stopped the input, and
    // the refusals stayed under the per-second limit that would have failed it at once.
    let refused = (id - 1) / 2;
    assert!(
        refused <= u64::from(busway_proto::MAX_REFUSALS_PER_WINDOW),
        "{refused}"
    );
    assert!(refused * 32 >= MAX_CONTROL_BACKLOG as u64, "{refused}");
    // The driver reads no more; after the dead-peer delay the transport fails, named a flood.
    p.advance(Duration::from_millis(1500), false);
    assert_eq!(p.a.error, Some(ProtoError::Flood));
    // Its last words say so.
    let mut frames = Vec::new();
    p.a.conn.poll_transmit(&mut frames, usize::MAX);
    assert_eq!(
        frames,
        [Frame::new(Body::GoAway(GoAway {
            reason: "flood".into()
        }))]
    );
}

#[derive(Clone, Debug)]
enum Op {
    Open,
    Write { stream: usize, len: usize },
    Finish { stream: usize },
    Read { stream: usize, max: usize },
    Release { stream: usize, n: usize },
    Stop { stream: usize },
    Deliver { bytes: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Open),
        4 => (0usize..6, 1usize..70_000).prop_map(|(stream, len)| Op::Write { stream, len }),
        1 => (0usize..6).prop_map(|stream| Op::Finish { stream }),
        3 => (0usize..6, 1usize..100_000).prop_map(|(stream, max)| Op::Read { stream, max }),
        3 => (0usize..6, 0usize..100_000).prop_map(|(stream, n)| Op::Release { stream, n }),
        1 => (0usize..6).prop_map(|stream| Op::Stop { stream }),
        4 => (1usize..200_000).prop_map(|bytes| Op::Deliver { bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The receiver never holds more than its windows, every byte it reads is the next one the
    /// sender wrote on that stream, and no sequence of calls breaks the transport.
    #[test]
    fn holdings_stay_within_the_windows(ops in proptest::collection::vec(op(), 1..120)) {
        let ca = Config { stream_window: 64 * 1024, conn_window: 192 * 1024, ..config("egress") };
        let mut p = Pair::established_with(config("ingress"), ca);
        p.a.auto_read = false;
        // Per stream: (id, bytes written, bytes read, finished, stopped).
        let mut streams: Vec<(u64, u64, u64, bool, bool)> = Vec::new();
        let mut unreleased = vec![0usize; 0];
        for op in ops {
            match op {
                Op::Open => {
                    if streams.len() < 6 {
                        streams.push((p.i.open("s"), 0, 0, false, false));
                        unreleased.push(0);
                    }
                }
                Op::Write { stream, len } => {
                    if let Some(s) = streams.get_mut(stream) {
                        if !s.3 && !s.4 {
                            let data: Vec<u8> =
                                (s.1..s.1 + len as u64).map(|i| (i % 251) as u8).collect();
                            s.1 += p.i.send(s.0, &data) as u64;
                        }
                    }
                }
                Op::Finish { stream } => {
                    if let Some(s) = streams.get_mut(stream) {
                        if !s.3 && !s.4 {
                            p.i.conn.finish(s.0).unwrap();
                            s.3 = true;
                        }
                    }
                }
                Op::Read { stream, max } => {
                    if let Some(s) = streams.get_mut(stream) {
                        match p.a.conn.read(s.0, max) {
                            Ok(Some(b)) => {
                                prop_assert!(b.len() <= max);
                                for (k, byte) in b.iter().enumerate() {
                                    prop_assert_eq!(*byte as u64, (s.2 + k as u64) % 251);
                                }
                                s.2 += b.len() as u64;
                                unreleased[stream] += b.len();
                            }
                            Ok(None) => prop_assert!(s.3 && s.2 == s.1),
                            Err(StreamError::Blocked) | Err(StreamError::Closed) => {}
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                }
                Op::Release { stream, n } => {
                    if let Some(s) = streams.get(stream) {
                        let n = n.min(unreleased[stream]);
                        p.a.conn.release(s.0, n);
                        unreleased[stream] -= n;
                    }
                }
                Op::Stop { stream } => {
                    if let Some(s) = streams.get_mut(stream) {
                        p.a.conn.stop(s.0);
                        s.4 = true;
                        unreleased[stream] = 0;
                    }
                }
                Op::Deliver { bytes } => {
                    p.chunk = bytes;
                    p.step(Who::I);
                    p.step(Who::A);
                }
            }
            prop_assert!(p.a.conn.buffered_bytes() <= 192 * 1024);
            for (k, s) in streams.iter().enumerate() {
                prop_assert!(s.2 <= s.1, "read {} of {} written", s.2, s.1);
                // Read and not released: never more than the stream's window.
                prop_assert!(unreleased[k] <= 64 * 1024);
            }
            prop_assert!(p.i.error.is_none(), "{:?}", p.i.error);
            prop_assert!(p.a.error.is_none(), "{:?}", p.a.error);
        }
    }
}
