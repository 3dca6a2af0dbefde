//! The fuzz seed corpus: small valid sessions, kept in sync with the codec.
//!
//! `BUSWAY_WRITE_FUZZ_CORPUS=1 cargo test -p busway-proto --test it corpus` rewrites
//! fuzz/corpus/decode/; otherwise this test fails when the checked-in seeds drift from what the
//! codec produces, and checks each seed drives a fresh connection the way the fuzz target does.

use std::path::PathBuf;
use std::time::Instant;

use busway_proto::frame::Body;
use busway_proto::{
    decode, encode, Accept, Auth, Challenge, Config, Connection, Data, Event, Frame, GoAway, Hello,
    Info, Open, Ping, Pong, Reset, Side, Window, DEFAULT_CONN_WINDOW, DEFAULT_STREAM_WINDOW,
    HANDSHAKE_VERSION, MAX_FRAME_LEN,
};
use bytes::{Bytes, BytesMut};
use prost::Message;

fn hello() -> Hello {
    Hello {
        version: HANDSHAKE_VERSION,
        nonce: Bytes::from_static(&[7; 32]),
        ..Hello::default()
    }
}

/// An identity in clear, as an unauthenticated node sends it.
fn info(node: &str) -> Bytes {
    Info {
        node: node.into(),
        namespace: "default".into(),
        max_frame: MAX_FRAME_LEN as u32,
        stream_window: DEFAULT_STREAM_WINDOW,
        conn_window: DEFAULT_CONN_WINDOW,
        ..Info::default()
    }
    .encode_to_vec()
    .into()
}

fn data(stream: u64, offset: u64, payload: &'static [u8], fin: bool) -> Body {
    Body::Data(Data {
        stream,
        offset,
        payload: Bytes::from_static(payload),
        fin,
    })
}

/// (file name, side the bytes are meant for, frames).
fn seeds() -> Vec<(&'static str, Side, Vec<Body>)> {
    let open = |stream| Open {
        stream,
        service: "echo".into(),
        session_id: "s-1".into(),
        client: "127.0.0.1:4000".into(),
        mode: "tcp".into(),
        hops: 0,
        ..Open::default()
    };
    vec![
        ("hello", Side::Acceptor, vec![Body::Hello(hello())]),
        (
            "acceptor_session",
            Side::Acceptor,
            vec![
                Body::Hello(hello()),
                Body::Auth(Auth {
                    info: info("ingress"),
                    sealed: false,
                }),
                Body::Open(open(1)),
                data(1, 0, b"hello", false),
                Body::Window(Window {
                    stream: 1,
                    credit: 100,
                }),
                Body::Ping(Ping { timepoint_us: 42 }),
                Body::Window(Window {
                    stream: 0,
                    credit: 100,
                }),
                data(1, 5, b"", true),
                Body::Reset(Reset {
                    stream: 1,
                    code: 4,
                    reason: "kicked".into(),
                }),
                Body::GoAway(GoAway {
                    reason: "drain".into(),
                }),
            ],
        ),
        (
            "initiator_session",
            Side::Initiator,
            vec![
                Body::Challenge(Challenge {
                    nonce: Bytes::from_static(&[8; 32]),
                }),
                Body::Accept(Accept {
                    nonce: Bytes::new(),
                    info: info("egress"),
                    sealed: false,
                }),
                Body::Open(open(2)),
                data(2, 0, b"hi", true),
                Body::Pong(Pong { timepoint_us: 1 }),
                Body::Window(Window {
                    stream: 0,
                    credit: 10,
                }),
                Body::GoAway(GoAway {
                    reason: "drain".into(),
                }),
            ],
        ),
    ]
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode")
}

#[test]
fn corpus_seeds_are_valid_sessions_and_up_to_date() {
    let write = std::env::var_os("BUSWAY_WRITE_FUZZ_CORPUS").is_some();
    for (name, side, bodies) in seeds() {
        let mut bytes = BytesMut::new();
        for b in &bodies {
            encode(&Frame::new(b.clone()), &mut bytes);
        }
        let mut check = bytes.clone();
        let mut n = 0;
        while decode(&mut check).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, bodies.len(), "{name}");

        let now = Instant::now();
        let mut c = Connection::new(side, Config::default(), [9; 32], now);
        c.handle_input(&mut bytes.clone(), now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let events: Vec<Event> = std::iter::from_fn(|| c.poll_event()).collect();
        if bodies.len() > 1 {
            assert!(c.is_established(), "{name}: {events:?}");
            assert!(
                events.iter().any(|e| matches!(e, Event::Opened { .. })),
                "{name}"
            );
        }

        let path = corpus_dir().join(name);
        if write {
            std::fs::create_dir_all(corpus_dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else if let Ok(on_disk) = std::fs::read(&path) {
            assert_eq!(
                on_disk,
                bytes.to_vec(),
                "{name} drifted; rewrite with BUSWAY_WRITE_FUZZ_CORPUS=1"
            );
        }
    }
}
