//! Multi-link sessions: the capability, the carrier and Ack rules a connection enforces, and a
//! session spread over several transports, reordered, duplicated, half-closed each way, and
//! refusing a peer that acknowledges what was never sent or sends beyond the window.

use busway_proto::frame::Body;
use busway_proto::{
    Ack, Event, Frame, Link, Open, Piece, StreamError, BLOCK, CAP_MULTILINK, LINK_KEY_LEN,
};
use bytes::Bytes;

use crate::harness::{config, params, Pair, Who};
use crate::links::{ml_config, Links};
use crate::streams::pattern;

const W: u32 = 256 * 1024;

fn carrier_open(stream: u64, key_len: usize, join: bool) -> Frame {
    Frame::new(Body::Open(Open {
        stream,
        service: "bulk".into(),
        link: Some(Link {
            session: Bytes::from(vec![1; key_len]),
            join,
        }),
        ..Open::default()
    }))
}

fn ack(stream: u64, offset: u64, fin: bool) -> Frame {
    Frame::new(Body::Ack(Ack {
        stream,
        offset,
        fin,
    }))
}

#[test]
fn the_capability_is_announced_and_both_ends_need_it() {
    let p = Pair::established_with(ml_config("i", W), ml_config("a", W));
    let caps = &p.i.conn.peer().unwrap().capabilities;
    assert_eq!(caps, &vec![CAP_MULTILINK.to_owned()]);
    assert!(p.i.conn.multilink() && p.a.conn.multilink());

    // A peer without it gets today's single-transport streams: no carrier either way.
    for (ci, ca) in [
        (ml_config("i", W), config("a")),
        (config("i"), ml_config("a", W)),
    ] {
        let mut p = Pair::established_with(ci, ca);
        assert!(!p.i.conn.multilink() && !p.a.conn.multilink());
        assert!(p.a.conn.peer().unwrap().capabilities.len() <= 1);
        assert_eq!(
            p.i.conn.open_carrier(params("s"), [0; LINK_KEY_LEN], false),
            Err(StreamError::Misuse("multilink was not negotiated"))
        );
        let id = p.i.open("plain");
        p.transfer(Who::I, id, b"still works", true);
        assert_eq!(p.a.received(id), (b"still works".to_vec(), true));
        let r = p.inject(Who::A, &carrier_open(3, LINK_KEY_LEN, false));
        assert_eq!(r.map_err(|e| e.reason()), Err("protocol"));
    }
}

#[test]
fn carrier_opens_need_a_full_key_and_acks_need_a_carrier() {
    let fresh = || Pair::established_with(ml_config("i", W), ml_config("a", W));
    for len in [0, LINK_KEY_LEN - 1, LINK_KEY_LEN + 1, 1000] {
        let mut p = fresh();
        let r = p.inject(Who::A, &carrier_open(1, len, false));
        assert_eq!(r.map_err(|e| e.reason()), Err("protocol"), "key of {len}");
    }
    let mut p = fresh();
    p.inject(Who::A, &carrier_open(1, LINK_KEY_LEN, true))
        .unwrap();
    let opened = p.a.events.iter().find_map(|e| match e {
        Event::Opened { id, open } => Some((*id, open.link.clone())),
        _ => None,
    });
    let (id, link) = opened.expect("opened");
    assert_eq!(id, 1);
    assert!(link.unwrap().join);
    // Acks on the carrier are kept (the highest) for the session to judge.
    p.inject(Who::A, &ack(1, 10, false)).unwrap();
    p.inject(Who::A, &ack(1, 4, false)).unwrap();
    assert_eq!(p.a.conn.take_ack(1), Some((10, false)));
    assert_eq!(p.a.conn.take_ack(1), None);
    // The stream API of plain streams is not for carriers, and the reverse.
    assert!(matches!(p.a.conn.read(1, 10), Err(StreamError::Misuse(_))));
    let mut b = Bytes::from_static(b"x");
    assert!(matches!(
        p.a.conn.write(1, &mut b),
        Err(StreamError::Misuse(_))
    ));
    assert!(matches!(p.a.conn.finish(1), Err(StreamError::Misuse(_))));
    let plain = p.a.open("plain");
    let piece = Piece {
        offset: 0,
        payload: Bytes::from_static(b"x"),
        fin: false,
    };
    assert!(matches!(
        p.a.conn.send_piece(plain, piece),
        Err(StreamError::Misuse(_))
    ));
    // An ack for a plain stream, or for no stream, is fatal.
    let mut q = fresh();
    let plain = q.i.open("plain");
    q.drive();
    let r = q.inject(Who::A, &ack(plain, 0, false));
    assert_eq!(r.map_err(|e| e.reason()), Err("protocol"));
    let mut q = fresh();
    let r = q.inject(Who::A, &ack(5, 0, false));
    assert_eq!(r.map_err(|e| e.reason()), Err("protocol"));
}

#[test]
fn a_carrier_refuses_to_be_fragmented_on_purpose() {
    let mut p = Pair::established_with(ml_config("i", W), ml_config("a", W));
    p.inject(Who::A, &carrier_open(1, LINK_KEY_LEN, false))
        .unwrap();
    let max = busway_proto::max_runs(W) as u64;
    for i in 0..max {
        let f = crate::streams::data_frame(1, 2 * i, b"x", false);
        p.inject(Who::A, &f).unwrap();
    }
    assert_eq!(p.a.conn.buffered_bytes(), max);
    let f = crate::streams::data_frame(1, 2 * max, b"x", false);
    let r = p.inject(Who::A, &f);
    assert_eq!(r.map_err(|e| e.reason()), Err("protocol"));
}

#[test]
fn a_session_spreads_over_every_transport_and_arrives_exactly_both_ways() {
    for n in [1, 2, 3] {
        let mut l = Links::new(n, W);
        let (up, down) = (pattern(1 << 20), pattern(700_001));
        l.send_both(&up, &down);
        l.run();
        assert_eq!(l.ends[1].got, up, "{n} links");
        assert_eq!(l.ends[0].got, down, "{n} links");
        assert!(l.ends[0].fin && l.ends[1].fin);
        for (e, wrote) in l.ends.iter().zip([up.len(), down.len()]) {
            assert!(e.done && e.failed.is_empty() && e.reset.is_none());
            // Nothing sent twice without a loss, and every transport carried a share.
            assert_eq!(e.sent.iter().sum::<u64>(), wrote as u64);
            for (link, bytes) in e.sent.iter().enumerate() {
                assert!(*bytes >= BLOCK, "{n} links: link {link} carried {bytes}");
            }
        }
        for p in &l.pairs {
            assert_eq!((p.i.conn.stream_count(), p.a.conn.stream_count()), (0, 0));
            assert!(p.i.error.is_none() && p.a.error.is_none());
        }
    }
}

#[test]
fn pieces_reordered_across_transports_are_put_back_in_order() {
    // One slow transport, one fast: the fast one's blocks arrive far ahead.
    let mut l = Links::new(2, W);
    l.pairs[0].chunk = 97;
    l.pairs[1].chunk = 1 << 16;
    let up = pattern(2 << 20);
    l.send_both(&up, b"");
    l.run();
    assert_eq!(l.ends[1].got, up);
    assert!(
        l.ends[1].peak_buffered > BLOCK,
        "out-of-order bytes were held: {}",
        l.ends[1].peak_buffered
    );
    assert!(l.ends[1].peak_buffered <= u64::from(W));
    assert!(l.ends[0].done && l.ends[1].done);
}

#[test]
fn duplicates_are_dropped_and_the_first_copy_wins() {
    let mut l = Links::new(2, W);
    let up = pattern(300_000);
    l.ends[0].out = Bytes::copy_from_slice(&up);
    l.ends[1].reads = false;
    l.run();
    let held = l.ends[1].ms().buffered();
    assert!(held > 0);
    // A copy of bytes already held, and one overlapping them with other bytes, on the other
    // transport: both ignored where they overlap.
    let dup = Piece {
        offset: 0,
        payload: Bytes::copy_from_slice(&up[..1000]),
        fin: false,
    };
    l.inject_piece(1, 1, dup).unwrap();
    let liar = Piece {
        offset: 500,
        payload: Bytes::from(vec![0xee; 1000]),
        fin: false,
    };
    l.inject_piece(1, 1, liar).unwrap();
    l.run();
    assert_eq!(l.ends[1].ms().buffered(), held, "nothing new held");
    l.ends[1].reads = true;
    l.ends[0].finish = true;
    l.run();
    assert_eq!(l.ends[1].got, up);
    assert!(l.ends[1].fin);
    assert!(l.ends.iter().all(|e| e.failed.is_empty()));
}

#[test]
fn an_ack_for_bytes_never_sent_costs_the_peer_its_transport_and_nothing_else() {
    for fin in [false, true] {
        let mut l = Links::new(2, W);
        let up = pattern(600_000);
        l.ends[0].out = Bytes::copy_from_slice(&up);
        l.ends[1].reads = false;
        l.ends[1].finish = true;
        l.run();
        let carrier = l.ends[0].carriers[1].unwrap();
        let sent: u64 = l.ends[0].sent.iter().sum();
        let offset = if fin { sent } else { sent + 1 };
        l.pairs[1]
            .inject(Who::I, &ack(carrier, offset, fin))
            .unwrap();
        l.run();
        let (link, why) = &l.ends[0].failed[0];
        assert_eq!((*link, why.reason()), (1, "protocol"), "{why}");
        assert!(!l.up[1]);
        assert_eq!(
            l.pairs[1].i.conn.error().map(|e| e.reason()),
            Some("protocol")
        );
        // The session goes on over the other transport, nothing lost.
        l.ends[1].reads = true;
        l.ends[0].finish = true;
        l.run();
        assert_eq!(l.ends[1].got, up, "fin: {fin}");
        assert!(l.ends[1].fin && l.ends[0].done);
    }
}

#[test]
fn bytes_beyond_the_window_or_the_fin_cost_the_peer_its_transport() {
    let cases: [(&str, u64, bool); 3] = [
        ("beyond the window", u64::from(W), false),
        ("far beyond", u64::MAX - 1, false),
        ("a fin that moves", 10, true),
    ];
    for (what, offset, fin) in cases {
        let mut l = Links::new(2, W);
        let up = pattern(100_000);
        l.ends[0].out = Bytes::copy_from_slice(&up);
        l.ends[0].finish = true;
        l.ends[1].finish = true;
        l.ends[1].reads = false;
        l.run();
        let bad = Piece {
            offset,
            payload: Bytes::from_static(b"xy"),
            fin,
        };
        let r = l.inject_piece(1, 1, bad);
        l.run();
        if offset.checked_add(2).is_none() {
            // An offset that overflows: the connection itself refuses it.
            assert_eq!(r.map_err(|e| e.reason()), Err("protocol"), "{what}");
            assert!(l.ends[1].failed.is_empty());
        } else {
            assert!(r.is_ok(), "{what}: the connection alone cannot tell");
            let (link, why) = &l.ends[1].failed[0];
            assert_eq!((*link, why.reason()), (1, "protocol"), "{what}: {why}");
            assert_eq!(l.pairs[1].a.conn.error(), Some(why));
        }
        assert!(!l.up[1], "{what}");
        l.ends[1].reads = true;
        l.run();
        assert_eq!(l.ends[1].got, up, "{what}");
        assert!(l.ends[1].fin && l.ends[1].done, "{what}");
    }
}

#[test]
fn half_close_crosses_transports_each_way() {
    // Nothing but fins.
    let mut l = Links::new(2, W);
    l.send_both(b"", b"");
    l.run();
    assert!(l.ends.iter().all(|e| e.fin && e.done && e.got.is_empty()));

    // A request, its end, then the reply: the reply direction stays open after the fin.
    let mut l = Links::new(2, W);
    let request = pattern(3 * BLOCK as usize + 5);
    l.ends[0].out = Bytes::copy_from_slice(&request);
    l.ends[0].finish = true;
    l.run();
    assert_eq!((l.ends[1].got.len(), l.ends[1].fin), (request.len(), true));
    assert!(!l.ends[0].fin && !l.ends[0].done);
    let reply = pattern(2 * BLOCK as usize);
    l.ends[1].out = Bytes::copy_from_slice(&reply);
    l.ends[1].finish = true;
    l.run();
    assert_eq!(l.ends[0].got, reply);
    assert!(l.ends.iter().all(|e| e.fin && e.done));
    assert_eq!(l.ends[1].got, request);
}

#[test]
fn a_join_for_no_session_is_refused() {
    let mut l = Links::new(2, W);
    l.send_both(b"abc", b"");
    l.run();
    let id = l.pairs[1]
        .i
        .conn
        .open_carrier(params("s"), [3; LINK_KEY_LEN], true)
        .unwrap();
    l.run();
    assert!(matches!(
        l.pairs[1].i.conn.read_piece(id, 10),
        Err(StreamError::Reset { .. })
    ));
    assert!(l.up[1], "a refused join harms nothing else");
}
