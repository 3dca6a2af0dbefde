//! What a handshake costs the accepting node, which is what a node under a flood of new
//! transports pays per connection (issue 12's target: resumptions accepted ≥ 5,000/s per core):
//!
//! - `handshake/full_pair`: both sides of a full handshake with a shared secret (Hello,
//!   Challenge, Auth, Accept, Ticket), in memory;
//! - `handshake/resumed_acceptor`: the acceptor alone taking a resuming Hello (ticket opened,
//!   strike register checked, transcript and proof verified) and answering Accept and a fresh
//!   Ticket. Every iteration presents a ticket never used before, earned in the untimed setup;
//! - `handshake/wrong_secret_acceptor`: the acceptor's Challenge and its refusal of an Auth
//!   proved with another secret — what a peer without the secret costs it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_proto::{Config, Connection, Event, Resumption, Side, Ticket};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const SECRET: &[u8] = b"a bench secret of thirty-two byte";

fn config(node: &str, secret: &[u8]) -> Config {
    Config {
        node: node.into(),
        secret: Some(secret.to_vec()),
        ..Config::default()
    }
}

/// Moves what `from` has to send into `to`; false when it had nothing.
fn pump(from: &mut Connection, to: &mut Connection, now: Instant) -> bool {
    let mut wire = BytesMut::new();
    from.transmit(&mut wire);
    if wire.is_empty() {
        return false;
    }
    let _ = to.handle_input(&mut wire, now);
    true
}

fn drive(i: &mut Connection, a: &mut Connection, now: Instant) {
    while pump(i, a, now) | pump(a, i, now) {}
}

/// A full handshake against an acceptor holding `r`; the ticket it earned the initiator.
fn earn(r: &Arc<Resumption>, now: Instant) -> Ticket {
    let mut i = Connection::new(Side::Initiator, config("ingress", SECRET), rand(), now);
    let mut a = Connection::new(Side::Acceptor, acceptor(r), rand(), now);
    drive(&mut i, &mut a, now);
    std::iter::from_fn(|| i.poll_event())
        .find_map(|e| match e {
            Event::Ticket(t) => Some(t),
            _ => None,
        })
        .expect("a ticket after a full handshake")
}

fn acceptor(r: &Arc<Resumption>) -> Config {
    Config {
        resumption: Some(r.clone()),
        ..config("egress", SECRET)
    }
}

fn rand() -> [u8; 32] {
    let mut n = [0u8; 32];
    for b in &mut n {
        *b = fastrand();
    }
    n
}

/// Nonces need only differ between connections here; a xorshift keeps the bench's own
/// dependencies to what the crate already has.
fn fastrand() -> u8 {
    use std::cell::Cell;
    thread_local!(static S: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) });
    S.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x as u8
    })
}

fn handshakes(c: &mut Criterion) {
    let now = Instant::now();
    // Room for every ticket the bench uses: a full register refuses resumption instead.
    let r = Arc::new(Resumption::new(Duration::from_secs(3600), 50_000_000));
    let mut group = c.benchmark_group("handshake");
    group.bench_function("full_pair", |b| {
        b.iter(|| {
            let mut i = Connection::new(Side::Initiator, config("ingress", SECRET), rand(), now);
            let mut a = Connection::new(Side::Acceptor, acceptor(&r), rand(), now);
            drive(&mut i, &mut a, now);
            assert!(a.is_established());
        })
    });
    group.bench_function("resumed_acceptor", |b| {
        b.iter_batched(
            || {
                let t = earn(&r, now);
                let ci = Config {
                    ticket: Some(t),
                    ..config("ingress", SECRET)
                };
                let mut i = Connection::new(Side::Initiator, ci, rand(), now);
                let mut first = BytesMut::new();
                i.transmit(&mut first);
                first
            },
            |mut first| {
                let mut a = Connection::new(Side::Acceptor, acceptor(&r), rand(), now);
                a.handle_input(&mut first, now)
                    .expect("a fresh ticket resumes");
                let mut answer = BytesMut::new();
                a.transmit(&mut answer);
                assert!(a.is_established());
                black_box(answer);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("wrong_secret_acceptor", |b| {
        b.iter_batched(
            || {
                let wrong = config("intruder", b"not the secret, but as long as it");
                Connection::new(Side::Initiator, wrong, rand(), now)
            },
            |mut i| {
                let mut a = Connection::new(Side::Acceptor, acceptor(&r), rand(), now);
                drive(&mut i, &mut a, now);
                assert!(!a.is_established());
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
