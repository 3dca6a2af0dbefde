//! Property tests: the codec round-trips and survives splits, garbage and bit flips; the
//! connection survives garbage and carries data intact over any chunking.

use std::collections::HashMap;
use std::time::Instant;

use busway_proto::frame::Body;
use busway_proto::{
    decode, encode, Accept, Ack, Auth, Challenge, Config, Connection, Data, Event, Frame, GoAway,
    Hello, Link, Open, Ping, Pong, Reset, Side, Window,
};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::harness::{params, Pair};

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9.:/-]{0,12}"
}

fn blob(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn labels() -> impl Strategy<Value = HashMap<String, String>> {
    proptest::collection::hash_map(text(), text(), 0..3)
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u32>(),
        blob(70),
        blob(100),
        text(),
        blob(100),
        any::<bool>(),
    )
        .prop_map(|(version, nonce, ticket, token_id, info, eager)| Hello {
            version,
            nonce,
            ticket,
            token_id,
            info,
            eager,
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        hello().prop_map(Body::Hello),
        blob(70).prop_map(|nonce| Body::Challenge(Challenge { nonce })),
        (blob(200), any::<bool>()).prop_map(|(info, sealed)| Body::Auth(Auth { info, sealed })),
        (blob(70), blob(200), any::<bool>()).prop_map(|(nonce, info, sealed)| Body::Accept(
            Accept {
                nonce,
                info,
                sealed
            }
        )),
        (
            any::<u64>(),
            text(),
            text(),
            text(),
            text(),
            labels(),
            (
                any::<u32>(),
                proptest::collection::vec(text(), 0..4),
                text(),
                proptest::option::of((blob(20), any::<bool>()))
            )
        )
            .prop_map(
                |(stream, service, session_id, client, mode, labels, (hops, path, to, link))| {
                    Body::Open(Open {
                        stream,
                        service,
                        session_id,
                        client,
                        mode,
                        labels,
                        hops,
                        path,
                        to,
                        link: link.map(|(session, join)| Link { session, join }),
                    })
                }
            ),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(stream, offset, fin)| Body::Ack(
            Ack {
                stream,
                offset,
                fin
            }
        )),
        (any::<u64>(), any::<u64>(), blob(3000), any::<bool>()).prop_map(
            |(stream, offset, payload, fin)| Body::Data(Data {
                stream,
                offset,
                payload,
                fin
            })
        ),
        (any::<u64>(), any::<u32>())
            .prop_map(|(stream, credit)| Body::Window(Window { stream, credit })),
        (any::<u64>(), any::<u32>(), text()).prop_map(|(stream, code, reason)| Body::Reset(
            Reset {
                stream,
                code,
                reason
            }
        )),
        any::<u64>().prop_map(|timepoint_us| Body::Ping(Ping { timepoint_us })),
        any::<u64>().prop_map(|timepoint_us| Body::Pong(Pong { timepoint_us })),
        text().prop_map(|reason| Body::GoAway(GoAway { reason })),
    ]
}

fn frames() -> impl Strategy<Value = Vec<Frame>> {
    proptest::collection::vec(body().prop_map(Frame::new), 0..12)
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        encode(f, &mut buf);
    }
    buf
}

/// Feeds `bytes` to decode in pieces of the given sizes (cycled), collecting frames.
fn decode_in_chunks(bytes: &[u8], sizes: &[usize]) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < bytes.len() {
        let n = sizes[k % sizes.len()].min(bytes.len() - pos);
        k += 1;
        buf.extend_from_slice(&bytes[pos..pos + n]);
        pos += n;
        while let Some(f) = decode(&mut buf).expect("valid stream") {
            out.push(f);
        }
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_frame_sequence_round_trips(frames in frames()) {
        let mut buf = encode_all(&frames);
        let mut decoded = Vec::new();
        while let Some(f) = decode(&mut buf).unwrap() {
            decoded.push(f);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn any_split_decodes_the_same(
        frames in frames(),
        sizes in proptest::collection::vec(1usize..600, 1..20),
    ) {
        let bytes = encode_all(&frames);
        prop_assert_eq!(decode_in_chunks(&bytes, &sizes), frames);
    }

    #[test]
    fn garbage_never_panics_decode(garbage in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut buf = BytesMut::from(&garbage[..]);
        let mut steps = 0;
        while let Ok(Some(_)) = decode(&mut buf) {
            steps += 1;
            prop_assert!(steps <= garbage.len(), "each frame consumes bytes");
        }
    }

    #[test]
    fn garbage_never_panics_connections(
        garbage in proptest::collection::vec(any::<u8>(), 0..2048),
        valid_prefix in frames(),
    ) {
        let now = Instant::now();
        // Raw garbage, and garbage behind valid envelopes, to each side fresh and established.
        let mut prefixed = encode_all(&valid_prefix);
        prefixed.extend_from_slice(&garbage);
        for input in [&garbage[..], &prefixed[..]] {
            for side in [Side::Initiator, Side::Acceptor] {
                let mut c = Connection::new(side, Config::default(), [3; 32], now);
                let mut buf = BytesMut::from(input);
                let first = c.handle_input(&mut buf, now);
                while c.poll_event().is_some() {}
                let mut out = BytesMut::new();
                c.transmit(&mut out);
                if first.is_err() {
                    prop_assert_eq!(c.handle_input(&mut buf, now), first);
                }
            }
            let mut p = Pair::established();
            let _ = p.i.conn.open(params("s"));
            p.drive();
            let r = p.inject_bytes(crate::harness::Who::A, input);
            p.a.poll_events();
            p.drive();
            if r.is_err() {
                prop_assert!(!p.a.conn.can_open());
            }
        }
    }

    #[test]
    fn single_bit_flips_are_caught(frame in body().prop_map(Frame::new), bit in any::<prop::sample::Index>()) {
        let buf = encode_all(std::slice::from_ref(&frame));
        let bit = bit.index(buf.len() * 8);
        let mut flipped = buf.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let r = decode(&mut flipped);
        prop_assert!(!matches!(r, Ok(Some(_))), "flip of bit {} accepted: {:?}", bit, r);
    }

    #[test]
    fn streams_carry_data_intact_over_any_chunking(
        chunk in 1usize..5000,
        writes in proptest::collection::vec(1usize..20_000, 1..8),
    ) {
        let mut p = Pair::established();
        p.chunk = chunk;
        let id = p.i.open("s");
        let mut expected = Vec::new();
        for (k, len) in writes.iter().enumerate() {
            let bytes: Vec<u8> = (0..*len).map(|i| (i + k) as u8).collect();
            expected.extend_from_slice(&bytes);
            p.transfer(crate::harness::Who::I, id, &bytes, k + 1 == writes.len());
        }
        prop_assert_eq!(p.a.received(id), (expected, true));
        let opened = p.a.events.iter().any(|e| matches!(e, Event::Opened { .. }));
        prop_assert!(opened);
        prop_assert!(p.i.error.is_none() && p.a.error.is_none());
    }
}
