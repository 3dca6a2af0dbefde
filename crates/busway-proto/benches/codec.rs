//! Codec and mux throughput: encode+decode of one Data frame (small and large, contiguous and
//! in zero-copy pieces), the envelope check alone, the keyed check against the CRC (`mac/*`:
//! a 64 KiB Data frame written in pieces by the sender and decoded by the receiver, with the
//! CRC-32, AES-256-GCM and ChaCha20-Poly1305), and 1 MiB through two connections wired back to
//! back in memory.

use std::hint::black_box;
use std::io::IoSlice;
use std::time::Instant;

use busway_proto::frame::Body;
use busway_proto::mac::FrameMac;
use busway_proto::{
    check, decode, encode, Config, Connection, Data, Decoder, Event, Frame, OpenParams, Rekey,
    Segments, Side,
};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn data_frame(size: usize) -> Frame {
    Frame::new(Body::Data(Data {
        stream: 7,
        offset: 123_456,
        payload: Bytes::from(vec![0x5a; size]),
        fin: false,
    }))
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for size in [64usize, 16 * 1024, 64 * 1024] {
        let frame = data_frame(size);
        let mut buf = BytesMut::with_capacity(size + 64);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("encode_decode_data_{size}"), |b| {
            b.iter(|| {
                encode(black_box(&frame), &mut buf);
                let decoded = decode(&mut buf).expect("valid").expect("complete");
                black_box(decoded);
            })
        });
        group.bench_function(format!("segments_data_{size}"), |b| {
            let mut segs = Segments::default();
            b.iter(|| {
                segs.push(black_box(&frame));
                let mut slices = [IoSlice::new(&[]); 4];
                let n = segs.io_slices(&mut slices);
                black_box(&slices[..n]);
                segs.advance(segs.len());
            })
        });
        let bytes = vec![0x33u8; size];
        group.bench_function(format!("check_{size}"), |b| {
            b.iter(|| black_box(check(black_box(&bytes))))
        });
    }
    group.finish();
}

/// What one hop does per Data frame: the sender writes it in pieces (computing the check over
/// the session's own payload buffer), the receiver takes the bytes from its socket buffer and
/// decodes (verifying the check). The copy into `wire` stands for the socket and is the same
/// for every check.
fn mac(c: &mut Criterion) {
    const SIZE: usize = 64 * 1024;
    let frame = data_frame(SIZE);
    let mut group = c.benchmark_group("mac");
    group.throughput(Throughput::Bytes(SIZE as u64));
    type Keys = Option<&'static ring::aead::Algorithm>;
    let variants: [(&str, Keys); 3] = [
        ("crc32", None),
        ("aes256gcm", Some(&ring::aead::AES_256_GCM)),
        ("chacha20poly1305", Some(&ring::aead::CHACHA20_POLY1305)),
    ];
    for (name, alg) in variants {
        let mut segs = Segments::default();
        let mut dec = Decoder::new();
        if let Some(alg) = alg {
            segs.rekey(Rekey::with_mac(FrameMac::with_algorithm(alg, &[7; 32])));
            dec = Decoder::with_mac(FrameMac::with_algorithm(alg, &[7; 32]));
        }
        let mut wire = BytesMut::with_capacity(4 * SIZE);
        group.bench_function(format!("data_{SIZE}_{name}"), |b| {
            b.iter(|| {
                segs.push(black_box(&frame));
                let mut slices = [IoSlice::new(&[]); 4];
                let n = segs.io_slices(&mut slices);
                for s in &slices[..n] {
                    wire.extend_from_slice(s);
                }
                segs.advance(segs.len());
                let decoded = dec.decode(&mut wire).expect("valid").expect("complete");
                black_box(decoded);
            })
        });
    }
    group.finish();
}

/// Moves everything `from` wants to send into `to`, the application reading and releasing
/// every readable stream at once, like a driver whose clients keep up.
fn pump(from: &mut Connection, to: &mut Connection, wire: &mut BytesMut, now: Instant) {
    from.transmit(wire);
    to.handle_input(wire, now).expect("no protocol error");
    while let Some(ev) = to.poll_event() {
        if let Event::Readable { id } = ev {
            while let Ok(Some(b)) = to.read(id, usize::MAX) {
                to.release(id, b.len());
                black_box(b);
            }
        }
    }
}

fn transfer(c: &mut Criterion) {
    const TOTAL: usize = 1 << 20;
    let now = Instant::now();
    let payload = Bytes::from(vec![0xa5; TOTAL]);
    let mut group = c.benchmark_group("mux");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.bench_function("transfer_1mib", |b| {
        b.iter(|| {
            let mut i = Connection::new(Side::Initiator, Config::default(), [1; 32], now);
            let mut a = Connection::new(Side::Acceptor, Config::default(), [2; 32], now);
            let mut wire = BytesMut::with_capacity(256 * 1024);
            while !(i.is_established() && a.is_established()) {
                pump(&mut i, &mut a, &mut wire, now);
                pump(&mut a, &mut i, &mut wire, now);
            }
            let id = i.open(OpenParams::default()).expect("open");
            let mut rest = payload.clone();
            while !rest.is_empty() {
                let _ = i.write(id, &mut rest);
                pump(&mut i, &mut a, &mut wire, now);
                pump(&mut a, &mut i, &mut wire, now);
            }
            i.finish(id).expect("finish");
            pump(&mut i, &mut a, &mut wire, now);
        })
    });
    group.finish();
}

criterion_group!(benches, codec, mac, transfer);
criterion_main!(benches);
