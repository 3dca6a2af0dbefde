//! Arbitrary bytes into the envelope decoder and into both ends of a fresh connection.
//!
//! Invariants: every decoded frame consumed bytes; a connection fed garbage either accepts it or
//! fails, and a failure is sticky (every later call reports it again) and leaves only a GoAway
//! naming the reason to send. The seed corpus (written by busway-proto's corpus test) holds
//! valid sessions for each side, so mutations reach the stream logic behind the handshake.

use std::time::{Duration, Instant};

use busway_proto::frame::Body;
use busway_proto::{decode, Config, Connection, Frame, Side};
use bytes::BytesMut;

pub fn run(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut frames = 0usize;
    let mut left = buf.len();
    while let Ok(Some(_)) = decode(&mut buf) {
        frames += 1;
        assert!(buf.len() < left, "a frame that consumed nothing");
        left = buf.len();
    }
    assert!(frames <= data.len());

    let now = Instant::now();
    for side in [Side::Initiator, Side::Acceptor] {
        let mut conn = Connection::new(side, Config::default(), [7; 32], now);
        // Fed in two halves, so partial envelopes are exercised too.
        let mid = data.len() / 2;
        let mut input = BytesMut::from(&data[..mid]);
        let mut failed = conn.handle_input(&mut input, now).err();
        if failed.is_none() {
            input.extend_from_slice(&data[mid..]);
            failed = conn.handle_input(&mut input, now).err();
        }
        while conn.poll_event().is_some() {}
        let _ = conn.handle_timeout(now + Duration::from_secs(1));
        let mut out = Vec::new();
        conn.poll_transmit(&mut out, usize::MAX);
        if let Some(e) = failed {
            assert_eq!(
                conn.handle_input(&mut input, now).err(),
                Some(e.clone()),
                "errors stick"
            );
            let goaway = Frame::new(Body::GoAway(busway_proto::GoAway {
                reason: e.reason().to_owned(),
            }));
            assert!(
                out.len() <= 1 && out.iter().all(|f| *f == goaway),
                "{out:?}"
            );
        }
    }
}
