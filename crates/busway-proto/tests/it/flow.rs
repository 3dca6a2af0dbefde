//! Credit flow control per stream and per transport, and the fatal violations of it.

use busway_proto::frame::Body;
use busway_proto::{Config, Event, Frame, Open, ProtoError, ResetCode, Window, MAX_DATA_PAYLOAD};
use bytes::Bytes;

use crate::harness::{config, params, Pair, Who};

use crate::streams::{data_frame, pattern};

#[test]
fn sender_stops_at_credit_and_consume_grants_more() {
    let ca = Config {
        stream_window: 1000,
        ..config("egress")
    };
    let mut p = Pair::established_with(config("ingress"), ca);
    p.a.auto_consume = false;
    let (id, credit) = p.i.conn.open_stream(params("bulk")).unwrap();
    assert_eq!(credit, 1000);
    // Over the credit: refused, but the connection is unharmed.
    let err = p.i.conn.send_data(id, Bytes::from(vec![0; 1001]), false);
    assert!(matches!(err, Err(ProtoError::Protocol(_))));
    p.i.conn
        .send_data(id, Bytes::from(vec![7; 1000]), false)
        .unwrap();
    assert!(p
        .i
        .conn
        .send_data(id, Bytes::from(vec![7; 1]), false)
        .is_err());
    p.drive();
    assert_eq!(p.a.received(id).0.len(), 1000);
    assert!(!p.i.events.iter().any(|e| matches!(e, Event::Credit { .. })));

    // A quarter of the window consumed is worth a Window frame.
    p.a.conn.consume(id, 249);
    p.drive();
    assert!(p.i.events.is_empty(), "below a quarter: no grant yet");
    p.a.conn.consume(id, 1);
    p.drive();
    assert_eq!(p.i.events, vec![Event::Credit { id, credit: 250 }]);
    p.i.conn
        .send_data(id, Bytes::from(vec![8; 250]), false)
        .unwrap();
    p.drive();
    assert_eq!(p.a.received(id).0.len(), 1250);
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn receiving_more_than_granted_is_fatal() {
    let ca = Config {
        stream_window: 100,
        ..config("egress")
    };
    let mut p = Pair::established_with(config("ingress"), ca);
    let (id, _) = p.i.conn.open_stream(params("s")).unwrap();
    p.drive();
    let r = p.inject(Who::A, &data_frame(id, 0, &[0; 101], false));
    assert!(matches!(r, Err(ProtoError::Protocol(_))), "{r:?}");
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
        let (id, _) = p.i.conn.open_stream(params("s")).unwrap();
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
    let ca = Config {
        conn_window: 400,
        ..config("egress")
    };
    let mut p = Pair::established_with(config("ingress"), ca);
    let (id, _) = p.i.conn.open_stream(params("s")).unwrap();
    p.drive();
    p.a.conn.reset(id, ResetCode::Cancel, "bye");
    // Stragglers from the initiator, sent before it saw the reset, each using transport credit.
    for k in 0..4u64 {
        assert!(p
            .inject(Who::A, &data_frame(id, k * 100, &[1; 100], false))
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
    // 400 bytes arrived on a window of 400: without credit returned the 5th would be fatal.
    assert!(p
        .inject(Who::A, &data_frame(id, 400, &[1; 100], false))
        .is_ok());
    assert!(p.a.error.is_none());
}

#[test]
fn conn_window_caps_bytes_in_flight() {
    let ca = Config {
        conn_window: 10_000,
        ..config("egress")
    };
    let mut p = Pair::established_with(config("ingress"), ca);
    p.a.auto_poll = false;
    let ids: Vec<u64> = (0..3)
        .map(|_| p.i.conn.open_stream(params("s")).unwrap().0)
        .collect();
    for &id in &ids {
        p.i.conn
            .send_data(id, Bytes::from(pattern(20_000)), true)
            .unwrap();
    }
    p.drive();
    // The acceptor hands nothing out, so nothing comes back: 10 000 bytes at most in flight.
    assert_eq!(p.i.conn.queued_bytes(), 60_000 - 10_000);
    assert!(!p.i.conn.wants_transmit());
    // Handing the data out returns the credit, and everything flows.
    loop {
        p.a.poll_events();
        p.drive();
        if !p.i.conn.wants_transmit() && p.i.conn.queued_bytes() == 0 {
            p.a.poll_events();
            break;
        }
    }
    for &id in &ids {
        assert_eq!(p.a.received(id), (pattern(20_000), true));
    }
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn one_mebibyte_each_way_with_odd_chunks() {
    for chunk in [7, 1500, 70_000] {
        let mut p = Pair::established();
        p.chunk = chunk;
        let (id, mut credit_i) = p.i.conn.open_stream(params("bulk")).unwrap();
        p.drive();
        let mut credit_a = busway_proto::DEFAULT_STREAM_WINDOW as usize;
        let src = pattern(1 << 20);
        let (mut sent_i, mut sent_a) = (0usize, 0usize);
        while sent_i < src.len() || sent_a < src.len() {
            let n = (src.len() - sent_i).min(credit_i as usize);
            if n > 0 {
                let fin = sent_i + n == src.len();
                p.i.conn
                    .send_data(id, Bytes::copy_from_slice(&src[sent_i..sent_i + n]), fin)
                    .unwrap();
                sent_i += n;
                credit_i -= n as u32;
            }
            let n = (src.len() - sent_a).min(credit_a);
            if n > 0 {
                let fin = sent_a + n == src.len();
                p.a.conn
                    .send_data(id, Bytes::copy_from_slice(&src[sent_a..sent_a + n]), fin)
                    .unwrap();
                sent_a += n;
                credit_a -= n;
            }
            p.drive();
            for e in std::mem::take(&mut p.i.events) {
                match e {
                    Event::Credit { credit, .. } => credit_a += credit as usize,
                    other => p.i.events.push(other),
                }
            }
            for e in std::mem::take(&mut p.a.events) {
                match e {
                    Event::Credit { credit, .. } => credit_i += credit,
                    other => p.a.events.push(other),
                }
            }
        }
        p.drive();
        assert_eq!(p.a.received(id), (src.clone(), true), "chunk {chunk}");
        assert_eq!(p.i.received(id), (src, true), "chunk {chunk}");
        assert_eq!(p.i.conn.stream_count(), 0);
        assert!(p.i.error.is_none() && p.a.error.is_none());
    }
}
