//! Streams over an established pair: data, half-close, reset, credit, liveness, draining.

use busway_proto::frame::Body;
use busway_proto::{Data, Event, Frame, ProtoError, ResetCode, MAX_DATA_PAYLOAD};
use bytes::Bytes;

use crate::harness::{params, Pair};

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
    op.hops = 2;
    let (id, credit) = p.i.conn.open_stream(op).unwrap();
    assert_eq!((id, credit), (1, busway_proto::DEFAULT_STREAM_WINDOW));
    p.i.conn
        .send_data(id, Bytes::from_static(b"ping?"), false)
        .unwrap();
    p.drive();
    let opened = p.a.events.iter().find_map(|e| match e {
        Event::StreamOpened {
            id,
            open,
            send_credit,
        } => Some((*id, open.clone(), *send_credit)),
        _ => None,
    });
    let (aid, open, send_credit) = opened.expect("stream opened on the acceptor");
    assert_eq!(aid, 1);
    assert_eq!(open.service, "echo");
    assert_eq!(open.session_id, "echo-session");
    assert_eq!(open.hops, 2);
    assert_eq!(open.labels.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(send_credit, busway_proto::DEFAULT_STREAM_WINDOW);
    assert_eq!(p.a.received(1), (b"ping?".to_vec(), false));

    p.a.conn
        .send_data(1, Bytes::from_static(b"pong!"), false)
        .unwrap();
    p.drive();
    assert_eq!(p.i.received(1), (b"pong!".to_vec(), false));
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (1, 1));
}

#[test]
fn each_side_uses_its_own_id_parity() {
    let mut p = Pair::established();
    let ids_i: Vec<u64> = (0..3)
        .map(|_| p.i.conn.open_stream(params("s")).unwrap().0)
        .collect();
    let ids_a: Vec<u64> = (0..3)
        .map(|_| p.a.conn.open_stream(params("s")).unwrap().0)
        .collect();
    assert_eq!(ids_i, [1, 3, 5]);
    assert_eq!(ids_a, [2, 4, 6]);
    p.drive();
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (6, 6));
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn half_close_each_way_then_forget() {
    let mut p = Pair::established();
    let (id, _) = p.i.conn.open_stream(params("echo")).unwrap();
    p.i.conn
        .send_data(id, Bytes::from_static(b"request"), true)
        .unwrap();
    p.drive();
    assert_eq!(p.a.received(id), (b"request".to_vec(), true));
    // Our side is closed for sending, so more data is a caller bug, not fatal.
    assert!(matches!(
        p.i.conn.send_data(id, Bytes::from_static(b"x"), false),
        Err(ProtoError::Protocol(_))
    ));
    // The other direction is still open.
    p.a.conn
        .send_data(id, Bytes::from_static(b"resp"), false)
        .unwrap();
    p.a.conn
        .send_data(id, Bytes::from_static(b"onse"), false)
        .unwrap();
    p.drive();
    assert_eq!(p.i.received(id), (b"response".to_vec(), false));
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (1, 1));
    // An empty fin closes the acceptor's half; both sides forget the stream.
    p.a.conn.send_data(id, Bytes::new(), true).unwrap();
    p.drive();
    assert_eq!(p.i.received(id), (b"response".to_vec(), true));
    assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (0, 0));
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn reset_reaches_the_peer_and_stragglers_are_ignored() {
    let mut p = Pair::established();
    let (id, _) = p.i.conn.open_stream(params("echo")).unwrap();
    p.drive();
    // The acceptor sends while the initiator resets: the frames cross.
    p.a.conn
        .send_data(id, Bytes::from_static(b"late"), false)
        .unwrap();
    p.i.conn.reset(id, ResetCode::Timeout, "backend too slow");
    assert_eq!(p.i.conn.stream_count(), 0);
    p.drive();
    assert!(p.i.error.is_none(), "data for a reset stream is ignored");
    assert!(p.i.received(id).0.is_empty());
    let reset = p.a.events.iter().find_map(|e| match e {
        Event::Reset { id, code, reason } => Some((*id, *code, reason.clone())),
        _ => None,
    });
    assert_eq!(
        reset,
        Some((id, ResetCode::Timeout, "backend too slow".into()))
    );
    assert_eq!(p.a.conn.stream_count(), 0);
    // Sending on a forgotten stream is dropped silently; resetting it again is a no-op.
    assert!(p
        .a
        .conn
        .send_data(id, Bytes::from_static(b"x"), false)
        .is_ok());
    p.a.conn.reset(id, ResetCode::Cancel, "again");
    assert!(!p.a.conn.wants_transmit());
}

#[test]
fn large_writes_split_into_max_payload_frames() {
    let mut p = Pair::established();
    let (id, _) = p.i.conn.open_stream(params("s")).unwrap();
    let bytes = pattern(200 * 1024);
    p.i.conn
        .send_data(id, Bytes::from(bytes.clone()), true)
        .unwrap();
    p.drive();
    let sizes: Vec<usize> =
        p.a.events
            .iter()
            .filter_map(|e| match e {
                Event::Data { data, .. } => Some(data.len()),
                _ => None,
            })
            .collect();
    assert_eq!(
        sizes,
        [
            MAX_DATA_PAYLOAD,
            MAX_DATA_PAYLOAD,
            MAX_DATA_PAYLOAD,
            8 * 1024
        ]
    );
    assert_eq!(p.a.received(id), (bytes, true));
}

#[test]
fn go_away_blocks_new_opens_and_existing_streams_go_on() {
    let mut p = Pair::established();
    let (id, _) = p.i.conn.open_stream(params("s")).unwrap();
    p.drive();
    // The acceptor opens just as the initiator drains: the Open and the GoAway cross.
    let (crossing, _) = p.a.conn.open_stream(params("late")).unwrap();
    p.i.conn.go_away("upgrade");
    assert!(!p.i.conn.can_open());
    assert!(p.i.conn.open_stream(params("x")).is_err());
    p.drive();
    assert!(p.a.events.contains(&Event::GoAway {
        reason: "upgrade".into()
    }));
    assert!(!p.a.conn.can_open());
    assert!(matches!(
        p.a.conn.open_stream(params("x")),
        Err(ProtoError::Protocol(_))
    ));
    assert!(p.a.events.contains(&Event::Reset {
        id: crossing,
        code: ResetCode::Shutdown,
        reason: "going away".into(),
    }));
    assert!(!p
        .i
        .events
        .iter()
        .any(|e| matches!(e, Event::StreamOpened { .. })));
    // The stream opened before goes on both ways.
    p.i.conn
        .send_data(id, Bytes::from_static(b"still"), true)
        .unwrap();
    p.a.conn
        .send_data(id, Bytes::from_static(b"here"), true)
        .unwrap();
    p.drive();
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
    assert!(matches!(
        p.i.conn.open_stream(op),
        Err(ProtoError::Protocol(_))
    ));
    assert_eq!(
        p.i.conn.open_stream(params("s")).unwrap().0,
        1,
        "id not burnt"
    );
}
