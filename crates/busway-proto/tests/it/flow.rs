//! Credit flow control per stream and per transport, the bounds it puts on what each side
//! holds, and the fatal violations of it.

use busway_proto::frame::Body;
use busway_proto::{
    Config, Event, Frame, Open, ResetCode, StreamError, Window, MAX_DATA_PAYLOAD, SEND_BACKLOG,
};
use bytes::Bytes;

use crate::harness::{config, Pair, Who};
use crate::streams::{data_frame, pattern};

fn small_windows(stream_window: u32, conn_window: u32) -> Config {
    Config {
        stream_window,
        conn_window,
        ..config("egress")
    }
}

#[test]
fn sender_stops_at_credit_and_release_grants_more() {
    let mut p = Pair::established_with(config("ingress"), small_windows(16_384, 1 << 20));
    p.a.auto_read = false;
    let id = p.i.open("bulk");
    assert_eq!(p.i.conn.capacity(id), Ok(16_384));
    // Over the credit: only what fits is taken, the rest stays with the caller.
    let mut data = Bytes::from(vec![7; 16_385]);
    assert_eq!(p.i.conn.write(id, &mut data), Ok(16_384));
    assert_eq!(data.len(), 1);
    assert_eq!(p.i.conn.write(id, &mut data), Err(StreamError::Blocked));
    assert_eq!(p.i.conn.capacity(id), Err(StreamError::Blocked));
    p.drive();
    assert_eq!(p.a.conn.buffered_bytes(), 16_384);

    // Reading alone grants nothing: the bytes are still held until released.
    let b = p.a.conn.read(id, usize::MAX).unwrap().unwrap();
    assert_eq!(b.len(), 16_384);
    p.drive();
    assert!(!p
        .i
        .events
        .iter()
        .any(|e| matches!(e, Event::Writable { .. })));
    // A quarter of the window released is worth a Window frame.
    p.a.conn.release(id, 4095);
    p.drive();
    assert!(p.i.events.is_empty(), "below a quarter: no grant yet");
    p.a.conn.release(id, 1);
    p.drive();
    assert_eq!(p.i.events, vec![Event::Writable { id }]);
    assert_eq!(p.i.conn.capacity(id), Ok(4096));
    assert_eq!(p.a.conn.buffered_bytes(), 16_384 - 4096);
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn receiving_more_than_granted_is_fatal() {
    let mut p = Pair::established_with(config("ingress"), small_windows(16_384, 1 << 20));
    let id = p.i.open("s");
    p.drive();
    let r = p.inject(Who::A, &data_frame(id, 0, &[0; 16_385], false));
    assert_eq!(r.as_ref().map_err(|e| e.reason()), Err("protocol"), "{r:?}");
    // The error sticks.
    let again = p.inject_bytes(Who::A, &[]);
    assert_eq!(again, r);
    assert!(!p.a.conn.can_open());
}

#[test]
fn offset_and_fin_and_unknown_ids_are_checked() {
    let cases: Vec<(&str, Vec<Frame>, bool)> = vec![
        (
            "right offset",
            vec![
                data_frame(1, 0, b"ab", false),
                data_frame(1, 2, b"c", false),
            ],
            true,
        ),
        (
            "gap",
            vec![
                data_frame(1, 0, b"ab", false),
                data_frame(1, 3, b"c", false),
            ],
            false,
        ),
        (
            "overlap",
            vec![
                data_frame(1, 0, b"ab", false),
                data_frame(1, 1, b"c", false),
            ],
            false,
        ),
        (
            "after fin",
            vec![data_frame(1, 0, b"ab", true), data_frame(1, 2, b"c", false)],
            false,
        ),
        (
            "never opened by peer",
            vec![data_frame(3, 0, b"x", false)],
            false,
        ),
        (
            "never opened by us",
            vec![data_frame(2, 0, b"x", false)],
            false,
        ),
        ("stream zero", vec![data_frame(0, 0, b"x", false)], false),
        (
            "window on never opened",
            vec![Frame::new(Body::Window(Window {
                stream: 9,
                credit: 1,
            }))],
            false,
        ),
        (
            "open with our parity",
            vec![Frame::new(Body::Open(Open {
                stream: 4,
                ..Open::default()
            }))],
            false,
        ),
        (
            "open not increasing",
            vec![Frame::new(Body::Open(Open {
                stream: 1,
                ..Open::default()
            }))],
            false,
        ),
        (
            "open increasing",
            vec![Frame::new(Body::Open(Open {
                stream: 5,
                ..Open::default()
            }))],
            true,
        ),
        (
            "handshake frame again",
            vec![Frame::new(Body::Auth(busway_proto::Auth::default()))],
            false,
        ),
        (
            "oversize payload",
            vec![data_frame(1, 0, &vec![0; MAX_DATA_PAYLOAD + 1], false)],
            false,
        ),
    ];
    for (name, frames, ok) in cases {
        let mut p = Pair::established();
        // The initiator opened stream 1; the frames below go to the acceptor.
        let id = p.i.open("s");
        assert_eq!(id, 1);
        p.drive();
        let mut result = Ok(());
        for f in &frames {
            result = p.inject(Who::A, f);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
        if !ok {
            assert_eq!(result.unwrap_err().reason(), "protocol", "{name}");
        }
    }
}

#[test]
fn frames_for_closed_streams_are_ignored_and_conn_credit_returned() {
    let mut p = Pair::established_with(config("ingress"), small_windows(16_384, 65_536));
    let id = p.i.open("s");
    p.drive();
    p.a.conn.reset(id, ResetCode::Cancel, "bye");
    // Stragglers from the initiator, sent before it saw the reset, each using transport credit.
    for k in 0..4u64 {
        assert!(p
            .inject(Who::A, &data_frame(id, k * 16_384, &[1; 16_384], false))
            .is_ok());
    }
    assert!(p
        .inject(
            Who::A,
            &Frame::new(Body::Window(Window {
                stream: id,
                credit: 5
            }))
        )
        .is_ok());
    let reset = Frame::new(Body::Reset(busway_proto::Reset {
        stream: id,
        code: 0,
        reason: String::new(),
    }));
    assert!(p.inject(Who::A, &reset).is_ok());
    // 64 KiB arrived on a window of 64 KiB: without credit returned the 5th would be fatal.
    assert!(p
        .inject(Who::A, &data_frame(id, 65_536, &[1; 100], false))
        .is_ok());
    assert!(p.a.error.is_none());
}

/// The transport window caps what a receiver holds over all streams, until it releases.
#[test]
fn conn_window_caps_what_the_receiver_holds() {
    let mut p = Pair::established_with(config("ingress"), small_windows(65_536, 100_000));
    p.a.auto_read = false;
    let ids: Vec<u64> = (0..3).map(|_| p.i.open("s")).collect();
    for &id in &ids {
        assert_eq!(p.i.send(id, &pattern(60_000)), 60_000);
        p.i.conn.finish(id).unwrap();
    }
    p.drive();
    // Nothing released, so nothing comes back: the receiver holds 100 000 bytes at most.
    assert_eq!(p.a.conn.buffered_bytes(), 100_000);
    assert_eq!(p.i.conn.queued_bytes(), 180_000 - 100_000);
    assert!(!p.i.conn.wants_transmit());
    // Reading without releasing changes nothing.
    let first = p.a.conn.read(ids[0], usize::MAX).unwrap().unwrap();
    p.drive();
    assert_eq!(p.i.conn.queued_bytes(), 80_000);
    // Releasing returns the credit, and everything flows.
    p.a.conn.release(ids[0], first.len());
    p.a.got
        .entry(ids[0])
        .or_default()
        .0
        .extend_from_slice(&first);
    p.a.auto_read = true;
    for &id in &ids {
        p.a.drain(id);
    }
    p.drive();
    for &id in &ids {
        assert_eq!(p.a.received(id), (pattern(60_000), true));
    }
    assert_eq!(p.a.conn.buffered_bytes(), 0);
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn the_send_backlog_is_bounded_and_says_when_it_drained() {
    // A peer that grants a big window but reads nothing: the sender's queue stops at the
    // backlog, not at the window.
    let mut p = Pair::established_with(config("ingress"), small_windows(1 << 20, 1 << 20));
    let ids: Vec<u64> = (0..8).map(|_| p.i.open("s")).collect();
    let mut queued = 0;
    for &id in &ids {
        while let Ok(n) = p.i.conn.capacity(id) {
            let taken = p.i.send(id, &vec![1; n.min(64 * 1024)]);
            assert!(taken > 0);
            queued += taken;
        }
    }
    assert!(queued >= SEND_BACKLOG, "{queued}");
    assert!(queued < SEND_BACKLOG + 64 * 1024, "{queued}");
    assert_eq!(p.i.conn.queued_bytes(), queued);
    // Transmitting drains the queue and tells the waiting streams once.
    p.drive();
    let rooms =
        p.i.events
            .iter()
            .filter(|e| matches!(e, Event::SendRoom))
            .count();
    assert_eq!(rooms, 1);
    assert!(p.i.conn.capacity(ids[0]).is_ok());
}

#[test]
fn one_mebibyte_each_way_with_odd_chunks() {
    for chunk in [7, 1500, 70_000] {
        let mut p = Pair::established();
        p.chunk = chunk;
        let id = p.i.open("bulk");
        p.drive();
        let src = pattern(1 << 20);
        let (mut sent_i, mut sent_a) = (0usize, 0usize);
        while sent_i < src.len() || sent_a < src.len() {
            sent_i += p.i.send(id, &src[sent_i..]);
            sent_a += p.a.send(id, &src[sent_a..]);
            p.drive();
        }
        p.i.conn.finish(id).unwrap();
        p.a.conn.finish(id).unwrap();
        p.drive();
        assert_eq!(p.a.received(id), (src.clone(), true), "chunk {chunk}");
        assert_eq!(p.i.received(id), (src, true), "chunk {chunk}");
        p.i.conn.stop(id);
        assert_eq!(p.i.conn.stream_count(), 0);
        assert!(!p.i.conn.wants_transmit(), "an ended stream stops quietly");
        assert!(p.i.error.is_none() && p.a.error.is_none());
    }
}
