//! Hostile bytes into the envelope decoder and into both ends of a fresh connection.
//!
//! The seed corpus (corpus/decode/) holds valid sessions for each side, so mutations reach the
//! stream, credit and liveness logic behind the handshake, not only the codec.

#![no_main]

use std::time::{Duration, Instant};

use busway_proto::{decode, Config, Connection, Side};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut frames = 0usize;
    while let Ok(Some(_)) = decode(&mut buf) {
        frames += 1;
        assert!(frames <= data.len(), "every frame consumes bytes");
    }

    let now = Instant::now();
    for side in [Side::Initiator, Side::Acceptor] {
        let mut conn = Connection::new(side, Config::default(), [7; 32], now);
        let mut out = BytesMut::new();
        // Feed in two halves so partial envelopes are exercised too.
        let mid = data.len() / 2;
        let mut input = BytesMut::from(&data[..mid]);
        let mut failed = conn.handle_input(&mut input, now).is_err();
        if !failed {
            input.extend_from_slice(&data[mid..]);
            failed = conn.handle_input(&mut input, now).is_err();
        }
        while let Some(_event) = conn.poll_event() {}
        conn.transmit(&mut out);
        let _ = conn.handle_timeout(now + Duration::from_secs(1));
        conn.transmit(&mut out);
        if failed {
            assert!(
                conn.handle_input(&mut input, now).is_err(),
                "errors are sticky"
            );
        }
    }
});
