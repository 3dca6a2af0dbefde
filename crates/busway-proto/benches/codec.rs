//! Codec and mux throughput: encode+decode of one Data frame (small and large), and 1 MiB
//! through two connections wired back to back in memory.

use std::hint::black_box;
use std::time::Instant;

use busway_proto::frame::Body;
use busway_proto::{decode, encode, Config, Connection, Data, Event, Frame, OpenParams, Side};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for size in [64usize, 16 * 1024] {
        let frame = Frame::new(Body::Data(Data {
            stream: 7,
            offset: 123_456,
            payload: Bytes::from(vec![0x5a; size]),
            fin: false,
        }));
        let mut buf = BytesMut::with_capacity(size + 64);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("encode_decode_data_{size}"), |b| {
            b.iter(|| {
                encode(black_box(&frame), &mut buf);
                let decoded = decode(&mut buf).expect("valid").expect("complete");
                black_box(decoded);
            })
        });
    }
    group.finish();
}

/// Moves everything `from` wants to send into `to`, handing received data to the
/// application at once (consume), like a driver whose clients keep up.
fn pump(from: &mut Connection, to: &mut Connection, wire: &mut BytesMut, now: Instant) -> usize {
    from.transmit(wire);
    let moved = wire.len();
    to.handle_input(wire, now).expect("no protocol error");
    let mut delivered = 0;
    while let Some(ev) = to.poll_event() {
        if let Event::Data { id, data, .. } = ev {
            delivered += data.len();
            to.consume(id, data.len());
        }
    }
    black_box(delivered);
    moved
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
            let (id, mut credit) = i.open_stream(OpenParams::default()).expect("open");
            let mut sent = 0;
            while sent < TOTAL {
                let n = (TOTAL - sent).min(credit as usize);
                if n > 0 {
                    let fin = sent + n == TOTAL;
                    i.send_data(id, payload.slice(sent..sent + n), fin)
                        .expect("within credit");
                    sent += n;
                    credit -= n as u32;
                }
                pump(&mut i, &mut a, &mut wire, now);
                a.transmit(&mut wire);
                i.handle_input(&mut wire, now).expect("no protocol error");
                while let Some(ev) = i.poll_event() {
                    if let Event::Credit { credit: more, .. } = ev {
                        credit += more;
                    }
                }
            }
            pump(&mut i, &mut a, &mut wire, now);
        })
    });
    group.finish();
}

criterion_group!(benches, codec, transfer);
criterion_main!(benches);
