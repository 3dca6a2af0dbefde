//! The handshake: roles, proofs, replay, version, timeout and garbage.

use std::time::Duration;

use busway_proto::frame::Body;
use busway_proto::{
    decode, Config, Connection, DecodeError, Event, Frame, Hello, Ping, ProtoError, Side,
};
use bytes::{Bytes, BytesMut};

use crate::harness::{config, fresh_nonce, Pair, Who};

fn with_secret(node: &str, secret: Option<&[u8]>) -> Config {
    Config {
        secret: secret.map(<[u8]>::to_vec),
        ..config(node)
    }
}

fn established_event(events: &[Event]) -> Option<(String, Duration)> {
    events.iter().find_map(|e| match e {
        Event::Established { peer, rtt, .. } => Some((peer.node.clone(), *rtt)),
        _ => None,
    })
}

#[test]
fn succeeds_without_secret_byte_by_byte() {
    let mut ci = config("ingress");
    ci.labels.insert("zone".into(), "a".into());
    let mut p = Pair::new(ci, config("egress"));
    p.chunk = 1;
    p.drive();
    assert_eq!(established_event(&p.i.events).unwrap().0, "egress");
    assert_eq!(established_event(&p.a.events).unwrap().0, "ingress");
    let seen_by_a = p.a.conn.peer().unwrap();
    assert_eq!(seen_by_a.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(seen_by_a.stream_window, busway_proto::DEFAULT_STREAM_WINDOW);
    assert_eq!(p.i.conn.peer().unwrap().namespace, "default");
    assert!(p.i.conn.can_open() && p.a.conn.can_open());
}

#[test]
fn succeeds_with_secret_and_measures_rtt() {
    let s = Some(&b"shared secret, 16+"[..]);
    let mut p = Pair::new(with_secret("ingress", s), with_secret("egress", s));
    // Hello takes 10 ms, Challenge 10 ms, Auth 10 ms, Accept 10 ms.
    p.now += Duration::from_millis(10);
    assert!(p.step(Who::I));
    p.now += Duration::from_millis(10);
    assert!(p.step(Who::A));
    assert_eq!(p.i.conn.rtt(), Some(Duration::from_millis(20)));
    assert!(!p.i.conn.is_established(), "the initiator waits for Accept");
    assert!(p.i.conn.can_open(), "but may open streams already");
    p.now += Duration::from_millis(10);
    assert!(p.step(Who::I));
    assert_eq!(
        established_event(&p.a.events),
        Some(("ingress".into(), Duration::from_millis(20)))
    );
    p.now += Duration::from_millis(10);
    assert!(p.step(Who::A));
    assert_eq!(
        established_event(&p.i.events),
        Some(("egress".into(), Duration::from_millis(20)))
    );
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

fn assert_both_fail_auth(si: Option<&[u8]>, sa: Option<&[u8]>) {
    let mut p = Pair::new(with_secret("ingress", si), with_secret("egress", sa));
    p.drive();
    assert_eq!(
        p.i.error,
        Some(ProtoError::Handshake("auth")),
        "{si:?} {sa:?}"
    );
    assert_eq!(
        p.a.error,
        Some(ProtoError::Handshake("auth")),
        "{si:?} {sa:?}"
    );
    assert!(!p.i.conn.is_established() && !p.a.conn.is_established());
    assert!(p.i.error.as_ref().unwrap().is_handshake());
}

#[test]
fn secret_mismatch_fails_both_sides_with_auth() {
    assert_both_fail_auth(Some(b"one secret, 16 bytes"), Some(b"two secret, 16 bytes"));
    assert_both_fail_auth(Some(b"one secret, 16 bytes"), None);
    assert_both_fail_auth(None, Some(b"two secret, 16 bytes"));
}

#[test]
fn replayed_auth_fails() {
    let s = Some(&b"shared secret, 16+"[..]);
    let mut first = Pair::new(with_secret("ingress", s), with_secret("egress", s));
    first.drive();
    assert!(first.a.conn.is_established());
    // The recorded initiator bytes are Hello then Auth.
    let recorded = first.i.sent_log.clone();

    // An attacker replays them to a fresh acceptor, which picks a fresh nonce.
    let mut second = Pair::new(with_secret("ingress", s), with_secret("egress", s));
    let r = second.inject_bytes(Who::A, &recorded);
    assert_eq!(r, Err(ProtoError::Handshake("auth")));
    assert!(!second.a.conn.is_established());
}

#[test]
fn wrong_handshake_version_fails_both_sides() {
    let now = std::time::Instant::now();
    let mut a = Connection::new(Side::Acceptor, config("egress"), fresh_nonce(), now);
    let hello = Hello {
        version: 1,
        nonce: Bytes::from_static(&[9; 32]),
        ..Hello::default()
    };
    let mut buf = BytesMut::new();
    busway_proto::encode(&Frame::new(Body::Hello(hello)), &mut buf);
    let err = a.handle_input(&mut buf, now).unwrap_err();
    assert_eq!(err, ProtoError::Handshake("version"));
    assert_eq!(err.reason(), "version");
    // The acceptor's last words tell the initiator why.
    let mut out = BytesMut::new();
    a.transmit(&mut out);
    let frame = decode(&mut out).unwrap().unwrap();
    assert!(matches!(frame.body, Some(Body::GoAway(g)) if g.reason == "version"));

    let mut p = Pair::new(config("ingress"), config("egress"));
    p.step(Who::I);
    p.a.wire.clear();
    let mut goaway = BytesMut::new();
    busway_proto::encode(
        &Frame::new(Body::GoAway(busway_proto::GoAway {
            reason: "version".into(),
        })),
        &mut goaway,
    );
    assert_eq!(
        p.inject_bytes(Who::I, &goaway),
        Err(ProtoError::Handshake("version"))
    );
}

#[test]
fn wrong_envelope_version_is_a_decode_error() {
    let mut p = Pair::new(config("ingress"), config("egress"));
    // Version 1 (XXH3 checks), 2 (the first handshake) and anything newer are refused at the
    // first byte.
    for v in [1u8, 2, 5] {
        let mut p = Pair::new(config("ingress"), config("egress"));
        let r = p.inject_bytes(Who::A, &[v, 0]);
        assert_eq!(r, Err(ProtoError::Decode(DecodeError::Version(v.into()))));
    }
    let r = p.inject_bytes(Who::A, &[busway_proto::VERSION as u8 + 5, 0]);
    assert!(r.is_err());
}

#[test]
fn handshake_times_out() {
    let mut p = Pair::new(config("ingress"), config("egress"));
    let deadline = p.a.conn.poll_timeout().unwrap();
    assert_eq!(deadline, p.base + Duration::from_secs(5));
    assert!(p
        .a
        .conn
        .handle_timeout(p.base + Duration::from_millis(4999))
        .is_ok());
    let err = p.a.conn.handle_timeout(deadline).unwrap_err();
    assert_eq!(err, ProtoError::Handshake("timeout"));
    assert_eq!(p.a.conn.poll_timeout(), None);
    // Poisoned: every later call repeats the error.
    let mut empty = BytesMut::new();
    assert_eq!(
        p.a.conn.handle_input(&mut empty, deadline),
        Err(ProtoError::Handshake("timeout"))
    );
    // The initiator times out too when nothing ever answers.
    p.advance(Duration::from_secs(6), false);
    assert_eq!(p.i.error, Some(ProtoError::Handshake("timeout")));
}

#[test]
fn established_connection_does_not_time_out_the_handshake() {
    let mut p = Pair::established();
    p.advance(Duration::from_secs(30), true);
    assert!(p.i.error.is_none() && p.a.error.is_none());
}

#[test]
fn garbage_before_handshake_is_a_decode_error() {
    let mut p = Pair::new(config("ingress"), config("egress"));
    let r = p.inject_bytes(Who::A, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(
        r,
        Err(ProtoError::Decode(DecodeError::Version(_)))
    ));

    // Right version and length, wrong check.
    let mut q = Pair::new(config("ingress"), config("egress"));
    let r = q.inject_bytes(Who::A, &[3, 2, 0x08, 0x01, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(r, Err(ProtoError::Decode(DecodeError::Checksum)));
    assert_eq!(r.unwrap_err().reason(), "checksum");
}

#[test]
fn non_handshake_frame_first_is_a_protocol_failure() {
    let mut p = Pair::new(config("ingress"), config("egress"));
    let ping = Frame::new(Body::Ping(Ping { timepoint_us: 1 }));
    assert_eq!(
        p.inject(Who::A, &ping),
        Err(ProtoError::Handshake("protocol"))
    );

    // A Hello sent to the initiator is the wrong direction.
    let mut q = Pair::new(config("ingress"), config("egress"));
    let hello = Frame::new(Body::Hello(Hello {
        version: busway_proto::HANDSHAKE_VERSION,
        nonce: Bytes::from_static(&[1; 32]),
        ..Hello::default()
    }));
    assert_eq!(
        q.inject(Who::I, &hello),
        Err(ProtoError::Handshake("protocol"))
    );
}

#[test]
fn nonce_length_is_checked() {
    for len in [0usize, 15, 65] {
        let mut p = Pair::new(config("ingress"), config("egress"));
        let hello = Frame::new(Body::Hello(Hello {
            version: busway_proto::HANDSHAKE_VERSION,
            nonce: Bytes::from(vec![1; len]),
            ..Hello::default()
        }));
        assert_eq!(
            p.inject(Who::A, &hello),
            Err(ProtoError::Handshake("protocol")),
            "nonce of {len} bytes"
        );
    }
}

#[test]
fn initiator_may_pipeline_opens_after_auth() {
    let mut p = Pair::new(config("ingress"), config("egress"));
    p.step(Who::I);
    p.step(Who::A);
    assert!(p.i.conn.can_open() && !p.i.conn.is_established());
    let id = p.i.open("echo");
    assert_eq!(p.i.send(id, b"early"), 5);
    // Auth, Open and Data arrive in one read.
    p.step(Who::I);
    assert!(p.a.conn.is_established());
    assert_eq!(p.a.received(id).0, b"early");
}

#[test]
fn a_peer_that_grants_no_credit_fails_the_handshake() {
    // It would hang every session on the transport while still answering pings.
    for (stream_window, conn_window) in [(0, 1 << 20), (1 << 20, 0), (1 << 20, 1 << 19)] {
        let stingy = Config {
            stream_window,
            conn_window,
            ..config("egress")
        };
        let mut p = Pair::new(config("ingress"), stingy);
        p.drive();
        assert_eq!(p.i.error, Some(ProtoError::Handshake("protocol")));
        assert!(!p.i.conn.can_open());
        // The initiator says why; the acceptor, established by then, hears it go away.
        assert!(
            p.a.events
                .iter()
                .any(|e| matches!(e, Event::GoAway { reason } if reason == "protocol")),
            "{:?}",
            p.a.events
        );
    }
    // A stingy initiator fails at the acceptor.
    let stingy = Config {
        stream_window: 0,
        ..config("ingress")
    };
    let mut p = Pair::new(stingy, config("egress"));
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("protocol")));
    assert_eq!(p.i.error, Some(ProtoError::Handshake("protocol")));
}
