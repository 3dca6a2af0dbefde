//! Streams over an established pair: data, half-close, reset, stop, draining.

use busway_proto::frame::Body;
use busway_proto::{Data, Event, Frame, ResetCode, StreamError, MAX_DATA_PAYLOAD};
use bytes::Bytes;

use crate::harness::{params, Pair, Who};

pub fn data_frame(stream: u64, offset: u64, payload: &[u8], fin: bool) -> Frame {
    Frame::new(Body::Data(Data {
        stream,
        offset,
        payload: Bytes::copy_from_slice(payload),
        fin,
    }))
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn open_and_data_both_ways_byte_by_byte() {
    let mut p = Pair::established();
    p.chunk = 1;
    let mut op = params("echo");
    op.labels.insert("tier".into(), "gold".into());
    op.path = vec!["prod/ingress".into(), "edge/relay".into()];
    op.to = "edge/chat-1".into();
    let id = p.i.conn.open(op).unwrap();
    assert_eq!(id, 1);
    assert_eq!(
        p.i.conn.capacity(id),
        Ok(busway_proto::DEFAULT_STREAM_WINDOW as usize)
    );
    assert_eq!(p.i.send(id, b"ping?"), 5);
    p.drive();
    let opened = p.a.events.iter().find_map(|e| match e {
        Event::Opened { id, open } => Some((*id, open.clone())),
        _ => None,
    });
    let (aid, open) = opened.expect("stream opened on the acceptor");
    assert_eq!(aid, 1);
    assert_eq!(open.service, "echo");
    assert_eq!(open.session_id, "echo-session");
    assert_eq!(open.hops, 2, "hops counts the path");
    assert_eq!(open.path, ["prod/ingress", "edge/relay"]);
    assert_eq!(open.to, "edge/chat-1");
    assert_eq!(open.labels.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(p.a.received(1), (b"ping?".to_vec(), false));

    assert_eq!(p.a.send(1, b"pong!"), 5);
    p.drive();
    assert_eq!(p.i.received(1), (b"pong!".to_vec(), false));
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (1, 1));
}

#[test]
fn each_side_uses_its_own_id_parity() {
    let mut p = Pair::established();
    let ids_i: Vec<u64> = (0..3).map(|_| p.i.open("s")).collect();
    let ids_a: Vec<u64> = (0..3).map(|_| p.a.open("s")).collect();
    assert_eq!(ids_i, [1, 3, 5]);
    assert_eq!(ids_a, [2, 4, 6]);
    p.drive();
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (6, 6));
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn half_close_each_way_then_stop_forgets() {
    let mut p = Pair::established();
    let id = p.i.open("echo");
    p.transfer(Who::I, id, b"request", true);
    assert_eq!(p.a.received(id), (b"request".to_vec(), true));
    // Our side is closed for sending, so more data is a caller bug, not fatal.
    assert!(matches!(
        p.i.conn.write(id, &mut Bytes::from_static(b"x")),
        Err(StreamError::Misuse(_))
    ));
    // The other direction is still open.
    p.transfer(Who::A, id, b"resp", false);
    p.transfer(Who::A, id, b"onse", false);
    assert_eq!(p.i.received(id), (b"response".to_vec(), false));
    // An empty fin closes the acceptor's half.
    p.a.conn.finish(id).unwrap();
    p.drive();
    assert_eq!(p.i.received(id), (b"response".to_vec(), true));
    // Both ended both ways: stopping sends nothing and forgets.
    p.i.conn.stop(id);
    p.a.conn.stop(id);
    assert!(!p.i.conn.wants_transmit() && !p.a.conn.wants_transmit());
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (0, 0));
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn stopping_a_finished_stream_still_sends_what_is_queued() {
    let mut p = Pair::established();
    let id = p.i.open("echo");
    p.drive();
    p.a.conn.finish(id).unwrap();
    p.drive();
    // The initiator writes its last bytes and fin, and lets go before anything is sent.
    assert_eq!(p.i.send(id, b"last words"), 10);
    p.i.conn.finish(id).unwrap();
    p.i.conn.stop(id);
    assert_eq!(p.i.conn.stream_count(), 0);
    p.drive();
    assert_eq!(p.a.received(id), (b"last words".to_vec(), true));
    assert!(p.a.resets.is_empty());
}

#[test]
fn stopping_a_live_stream_resets_it_at_the_peer() {
    let mut p = Pair::established();
    let id = p.i.open("echo");
    p.transfer(Who::I, id, b"hello", false);
    p.i.conn.stop(id);
    p.drive();
    assert_eq!(
        p.a.resets.get(&id),
        Some(&StreamError::Reset {
            code: ResetCode::Cancel,
            reason: "stream closed".into()
        })
    );
    // The acceptor's writes fail the same way until it stops too.
    assert!(matches!(
        p.a.conn.write(id, &mut Bytes::from_static(b"x")),
        Err(StreamError::Reset { .. })
    ));
    p.a.conn.stop(id);
    assert!(!p.a.conn.wants_transmit(), "no reset back for a reset");
    assert_eq!(p.a.conn.stream_count(), 0);
}

#[test]
fn reset_reaches_the_peer_and_stragglers_are_ignored() {
    let mut p = Pair::established();
    let id = p.i.open("echo");
    p.drive();
    // The acceptor sends while the initiator resets: the frames cross.
    assert_eq!(p.a.send(id, b"late"), 4);
    p.i.conn.reset(id, ResetCode::Timeout, "backend too slow");
    assert_eq!(p.i.conn.stream_count(), 0);
    p.drive();
    assert!(p.i.error.is_none(), "data for a reset stream is ignored");
    assert!(p.i.received(id).0.is_empty());
    assert_eq!(
        p.a.resets.get(&id),
        Some(&StreamError::Reset {
            code: ResetCode::Timeout,
            reason: "backend too slow".into()
        })
    );
    // Calls on a forgotten stream say so; resetting it again is a no-op.
    assert_eq!(
        p.i.conn.write(id, &mut Bytes::from_static(b"x")),
        Err(StreamError::Closed)
    );
    assert_eq!(p.i.conn.read(id, 10), Err(StreamError::Closed));
    p.i.conn.reset(id, ResetCode::Cancel, "again");
    assert!(!p.i.conn.wants_transmit());
}

#[test]
fn a_peer_reset_drops_what_was_buffered_and_returns_its_credit() {
    let mut p = Pair::established();
    p.a.auto_read = false;
    let id = p.i.open("s");
    p.transfer(Who::I, id, &pattern(100_000), false);
    assert_eq!(p.a.conn.buffered_bytes(), 100_000);
    let reset = Frame::new(Body::Reset(busway_proto::Reset {
        stream: id,
        code: ResetCode::Kicked as u32,
        reason: "bye".into(),
    }));
    p.inject(Who::A, &reset).unwrap();
    assert_eq!(p.a.conn.buffered_bytes(), 0);
    assert!(matches!(
        p.a.conn.read(id, 10),
        Err(StreamError::Reset {
            code: ResetCode::Kicked,
            ..
        })
    ));
}

#[test]
fn large_writes_split_into_max_payload_frames() {
    let mut p = Pair::established();
    p.a.auto_read = false;
    let id = p.i.open("s");
    let bytes = pattern(200 * 1024);
    assert_eq!(p.i.send(id, &bytes), bytes.len());
    p.i.conn.finish(id).unwrap();
    p.drive();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    while let Ok(Some(b)) = p.a.conn.read(id, usize::MAX) {
        sizes.push(b.len());
        all.extend_from_slice(&b);
    }
    assert_eq!(
        sizes,
        [
            MAX_DATA_PAYLOAD,
            MAX_DATA_PAYLOAD,
            MAX_DATA_PAYLOAD,
            8 * 1024
        ]
    );
    assert_eq!(all, bytes);
    assert_eq!(p.a.conn.read(id, 1), Ok(None), "then the fin");
}

#[test]
fn reads_take_at_most_what_is_asked() {
    let mut p = Pair::established();
    p.a.auto_read = false;
    let id = p.i.open("s");
    p.transfer(Who::I, id, b"0123456789", true);
    let mut parts = Vec::new();
    while let Ok(Some(b)) = p.a.conn.read(id, 3) {
        parts.push(b);
    }
    assert_eq!(parts, [&b"012"[..], b"345", b"678", b"9"]);
}

#[test]
fn go_away_blocks_new_opens_and_existing_streams_go_on() {
    let mut p = Pair::established();
    let id = p.i.open("s");
    p.drive();
    // The acceptor opens just as the initiator drains: the Open and the GoAway cross.
    let crossing = p.a.open("late");
    p.i.conn.go_away("upgrade");
    assert!(!p.i.conn.can_open());
    assert_eq!(p.i.conn.open(params("x")), Err(StreamError::Closed));
    p.drive();
    assert!(p.a.events.contains(&Event::GoAway {
        reason: "upgrade".into()
    }));
    assert!(!p.a.conn.can_open());
    assert_eq!(p.a.conn.open(params("x")), Err(StreamError::Closed));
    assert_eq!(
        p.a.resets.get(&crossing),
        Some(&StreamError::Reset {
            code: ResetCode::Shutdown,
            reason: "going away".into(),
        })
    );
    assert!(!p.i.events.iter().any(|e| matches!(e, Event::Opened { .. })));
    // The stream opened before goes on both ways.
    p.transfer(Who::I, id, b"still", true);
    p.transfer(Who::A, id, b"here", true);
    assert_eq!(p.a.received(id), (b"still".to_vec(), true));
    assert_eq!(p.i.received(id), (b"here".to_vec(), true));
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn open_larger_than_a_frame_is_refused_without_harm() {
    let mut p = Pair::established();
    let mut op = params("s");
    op.labels
        .insert("big".into(), "x".repeat(busway_proto::MAX_FRAME_LEN));
    assert!(matches!(p.i.conn.open(op), Err(StreamError::Misuse(_))));
    assert_eq!(p.i.open("s"), 1, "id not burnt");
}
