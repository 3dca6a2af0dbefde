//! CONTRACT 9.6 on an established transport: a peer that completed the handshake and then sends
//! what no busway node sends — a bad MAC (the transport proved a secret without TLS, so its
//! envelopes are keyed: CONTRACT 10), an oversize frame, bytes beyond its credit, frames
//! for streams it never opened, ids out of order — or floods and never reads, or grants no
//! credit at all, is closed with a logged reason and a counted metric, while the real session
//! on the node's other transport goes on. The peer is `busway_proto::Connection` over a real
//! socket, driven by hand.

mod common;

use std::time::Duration;

use busway_proto::frame::Body;
use busway_proto::{Config, Data, Frame, Open, Ping};
use bytes::{Bytes, BytesMut};
use common::peer::FakePeer;
use common::*;

fn peer_config(node: &str) -> Config {
    Config {
        node: node.into(),
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Config::default()
    }
}

fn open(stream: u64, service: &str) -> Frame {
    Frame::new(Body::Open(Open {
        stream,
        service: service.into(),
        session_id: format!("hostile-{stream}"),
        ..Open::default()
    }))
}

fn data(stream: u64, offset: u64, payload: Vec<u8>) -> Frame {
    Frame::new(Body::Data(Data {
        stream,
        offset,
        payload: Bytes::from(payload),
        fin: false,
    }))
}

fn rejected(admin: &str, reason: &str) -> f64 {
    metric(
        admin,
        &format!("busway_frames_rejected_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Runs `attack` on a fresh established transport to the chain's egress and expects it closed
/// within 2 s, counted under `reason` and logged; the chain's own session is untouched. The
/// egress also serves `stuck`, whose backend dial hangs, so a stream the attacker opens there
/// reads nothing and releases no credit while the attack goes on.
fn attack_closes_only_that_transport(reason: &str, attack: impl FnOnce(&mut FakePeer)) {
    let backend = backends::echo();
    let stuck = format!(
        "[[service]]\nname = \"stuck\"\nbackends = [\"tcp://{}\"]\nconnect_timeout = \"5s\"\n",
        backends::hanging_addr()
    );
    let chain = Chain::with(&(egress_toml(&backend.url(), "") + &stuck), |bus| {
        ingress_toml(bus, "")
    });
    let admin = chain.egress.addr("admin");
    let mut c = chain.client();
    roundtrip(&mut c, b"before");
    let before = rejected(&admin, reason);
    let mut p = FakePeer::established(&chain.egress.addr("bus"), peer_config("hostile"));
    attack(&mut p);
    let closed = p.closed_within(Duration::from_secs(4));
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(3)),
        "{reason}: closed after {closed:?}"
    );
    assert!(
        wait_for(Duration::from_secs(2), || rejected(&admin, reason)
            == before + 1.0),
        "{reason}: {}",
        http::get(&admin, "/metrics").body
    );
    assert!(
        wait_for(Duration::from_secs(2), || chain
            .egress
            .stderr()
            .contains("node=hostile")),
        "no log line for the hostile transport:\n{}",
        chain.egress.stderr()
    );
    roundtrip(&mut c, b"after");
    let mut c2 = chain.client();
    roundtrip(&mut c2, b"a new session");
}

#[test]
fn a_bad_mac_after_the_handshake_closes_the_transport() {
    attack_closes_only_that_transport("auth", |p| {
        let mut b = BytesMut::new();
        p.conn
            .encode_frame(&Frame::new(Body::Ping(Ping { timepoint_us: 1 })), &mut b);
        let last = b.len() - 1;
        b[last] ^= 0x40;
        p.send_raw(&b);
    });
}

#[test]
fn an_oversize_frame_after_the_handshake_closes_the_transport() {
    attack_closes_only_that_transport("oversize", |p| {
        // The keyed envelope version, then a length of 16 MiB: refused before any body is read.
        p.send_raw(&[busway_proto::KEYED_VERSION as u8, 0x80, 0x80, 0x80, 0x08]);
    });
}

#[test]
fn bytes_beyond_the_stream_window_close_the_transport() {
    attack_closes_only_that_transport("protocol", |p| {
        // A window and a half on a stream whose session is still dialling its backend, so
        // nothing is released: the excess is the peer's alone.
        let mut b = BytesMut::new();
        p.conn.encode_frame(&open(1, "stuck"), &mut b);
        let window = busway_proto::DEFAULT_STREAM_WINDOW as usize;
        let mut offset = 0u64;
        for _ in 0..(window / 65_536 * 3 / 2) {
            p.conn
                .encode_frame(&data(1, offset, vec![b'z'; 65_536]), &mut b);
            offset += 65_536;
        }
        p.send_raw(&b);
    });
}

#[test]
fn data_for_a_stream_never_opened_closes_the_transport() {
    attack_closes_only_that_transport("protocol", |p| {
        p.send(&data(7, 0, b"who am I".to_vec()));
    });
}

#[test]
fn a_reused_stream_id_closes_the_transport() {
    attack_closes_only_that_transport("protocol", |p| {
        p.send(&open(3, "chat"));
        p.send(&open(3, "chat"));
    });
}

/// Pings by the thousand: no node does that. The transport is closed at once as a flood,
/// counted, and the node's memory did not move.
#[test]
fn a_ping_flood_closes_the_transport() {
    attack_closes_only_that_transport("flood", |p| {
        let mut pings = BytesMut::new();
        for t in 0..2000u64 {
            p.conn.encode_frame(
                &Frame::new(Body::Ping(Ping { timepoint_us: t })),
                &mut pings,
            );
        }
        p.send_raw(&pings);
    });
}

/// A peer whose handshake grants no credit would hang every session on it: refused at once.
#[test]
fn a_peer_that_grants_no_credit_fails_the_handshake() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let admin = chain.egress.addr("admin");
    let stingy = Config {
        stream_window: 0,
        ..peer_config("stingy")
    };
    let mut p = FakePeer::start(&chain.egress.addr("bus"), stingy);
    let closed = p.closed_within(Duration::from_secs(3));
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(1)),
        "{closed:?}"
    );
    assert!(wait_for(Duration::from_secs(2), || metric(
        &admin,
        "busway_handshake_failures_total{reason=\"protocol\"}"
    ) == Some(1.0)));
    assert!(!p.conn.is_established());
}

/// A peer-supplied service name is text a peer chose, up to a frame long: it is refused and
/// logged cut short, not flooded into the log.
#[test]
fn a_huge_service_name_is_refused_and_logged_cut_short() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let mut p = FakePeer::established(&chain.egress.addr("bus"), peer_config("verbose"));
    let name = "x".repeat(60_000);
    p.conn
        .open(busway_proto::OpenParams {
            service: name,
            ..Default::default()
        })
        .unwrap();
    p.flush();
    assert!(wait_for(Duration::from_secs(3), || {
        p.exchange();
        chain.egress.stderr().contains("does not serve")
    }));
    let log = chain.egress.stderr();
    assert!(
        !log.contains(&"x".repeat(200)),
        "a long run of the name was logged"
    );
    assert!(
        p.closed_within(Duration::from_millis(300)).is_none(),
        "only the stream is refused"
    );
    assert_eq!(backend.accepted(), 0);
}
