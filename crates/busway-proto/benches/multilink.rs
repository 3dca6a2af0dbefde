//! What carrying a session over several transports costs, sans IO: 8 MiB one way through
//! connections wired back to back in memory (every envelope encoded, checked and decoded), as
//! a plain stream on one transport, as a multi-link session on one transport, and as one on
//! two. The target is 2 links ≥ 0.95 × one link: the safety must cost (almost) nothing.
//! One thread does both ends, so two links gain no parallelism here; the ratio is the
//! bookkeeping's price (retransmit buffer, reassembly, acknowledgements).

use std::hint::black_box;
use std::time::Instant;

use busway_proto::{Config, Connection, Event, MultiStream, OpenParams, Side};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};

const TOTAL: usize = 8 << 20;

fn config(multilink: bool) -> Config {
    Config {
        multilink,
        ..Config::default()
    }
}

/// Moves everything `from` has to send into `to`.
fn deliver(from: &mut Connection, to: &mut Connection, wire: &mut BytesMut, now: Instant) {
    from.transmit(wire);
    to.handle_input(wire, now).expect("no protocol error");
}

fn established(multilink: bool, now: Instant) -> (Connection, Connection) {
    let mut i = Connection::new(Side::Initiator, config(multilink), [1; 32], now);
    let mut a = Connection::new(Side::Acceptor, config(multilink), [2; 32], now);
    let mut wire = BytesMut::new();
    while !(i.is_established() && a.is_established()) {
        deliver(&mut i, &mut a, &mut wire, now);
        deliver(&mut a, &mut i, &mut wire, now);
    }
    (i, a)
}

fn drain_events(c: &mut Connection) {
    while c.poll_event().is_some() {}
}

/// A plain stream: write, deliver, read and release, until everything arrived.
fn plain(now: Instant, payload: &Bytes) {
    let (mut i, mut a) = established(false, now);
    let id = i.open(OpenParams::default()).expect("open");
    let mut wire = BytesMut::with_capacity(256 * 1024);
    let mut rest = payload.clone();
    let mut got = 0;
    while got < TOTAL {
        if !rest.is_empty() && i.capacity(id).is_ok() {
            let _ = i.write(id, &mut rest);
        }
        deliver(&mut i, &mut a, &mut wire, now);
        drain_events(&mut a);
        while let Ok(Some(b)) = a.read(id, usize::MAX) {
            got += b.len();
            a.release(id, b.len());
            black_box(&b);
        }
        deliver(&mut a, &mut i, &mut wire, now);
        drain_events(&mut i);
    }
}

/// Both ends of a multi-link session over `links` established transports, every carrier
/// joined.
struct Multi {
    i: Vec<Connection>,
    a: Vec<Connection>,
    ci: Vec<u64>,
    ca: Vec<u64>,
    si: MultiStream,
    sa: MultiStream,
    wire: BytesMut,
}

impl Multi {
    fn new(links: usize, now: Instant) -> Multi {
        let (mut i, mut a): (Vec<_>, Vec<_>) = (0..links).map(|_| established(true, now)).unzip();
        let window = Config::default().stream_window;
        let key = [9; busway_proto::LINK_KEY_LEN];
        let mut ci = Vec::new();
        let mut ca = Vec::new();
        let mut wire = BytesMut::new();
        for (l, (i, a)) in i.iter_mut().zip(a.iter_mut()).enumerate() {
            let id = i.open_carrier(OpenParams::default(), key, l > 0);
            ci.push(id.expect("carrier"));
            deliver(i, a, &mut wire, now);
            while let Some(ev) = a.poll_event() {
                if let Event::Opened { id, .. } = ev {
                    ca.push(id);
                }
            }
        }
        let mut si = MultiStream::open(window, window, 0);
        let mut sa = MultiStream::accept(window, window, 0);
        for l in 1..links {
            si.add_link(l);
            sa.add_link(l);
        }
        Multi {
            i,
            a,
            ci,
            ca,
            si,
            sa,
            wire,
        }
    }

    fn transfer(&mut self, now: Instant, payload: &Bytes) {
        let links = self.i.len();
        let mut rest = payload.clone();
        let mut got = 0;
        while got < TOTAL {
            self.si.write(&mut rest);
            let (conns, ids) = (&mut self.i, &self.ci);
            while let Some((l, p)) = self
                .si
                .poll_piece(|l| conns[l].capacity(ids[l]).unwrap_or(0))
            {
                conns[l].send_piece(ids[l], p).expect("send");
            }
            for l in 0..links {
                deliver(&mut self.i[l], &mut self.a[l], &mut self.wire, now);
                drain_events(&mut self.a[l]);
                while let Ok(p) = self.a[l].read_piece(self.ca[l], usize::MAX) {
                    self.sa.on_piece(p).expect("valid");
                }
            }
            while let Ok(Some(b)) = self.sa.read(usize::MAX) {
                got += b.len();
                self.sa.release(b.len());
                black_box(&b);
            }
            while let Some((l, offset, fin)) = self.sa.poll_ack() {
                self.a[l].send_ack(self.ca[l], offset, fin).expect("ack");
            }
            for l in 0..links {
                deliver(&mut self.a[l], &mut self.i[l], &mut self.wire, now);
                drain_events(&mut self.i[l]);
                if let Some((offset, fin)) = self.i[l].take_ack(self.ci[l]) {
                    self.si.on_ack(offset, fin).expect("valid");
                }
            }
        }
    }
}

fn transfer(c: &mut Criterion) {
    let now = Instant::now();
    let payload = Bytes::from(vec![0xa5; TOTAL]);
    let mut group = c.benchmark_group("multilink");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(20);
    group.bench_function("plain_1_link", |b| b.iter(|| plain(now, &payload)));
    for links in [1, 2] {
        group.bench_function(format!("multilink_{links}_link"), |b| {
            b.iter_batched(
                || Multi::new(links, now),
                |mut m| m.transfer(now, &payload),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// `MULTILINK_RATIO=N cargo bench --bench multilink`: N rounds, each running the three
/// variants back to back, and the median time of each with the ratios. On a shared machine
/// the load changes between criterion's benchmarks, which run one after the other; alternating
/// them makes every variant see the same load, so the ratio holds even when the times do not.
fn ratio(rounds: usize) {
    let now = Instant::now();
    let payload = Bytes::from(vec![0xa5; TOTAL]);
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        let t = Instant::now();
        plain(now, &payload);
        times[0].push(t.elapsed().as_secs_f64());
        for (k, links) in [(1, 1), (2, 2)] {
            let mut m = Multi::new(links, now);
            let t = Instant::now();
            m.transfer(now, &payload);
            times[k].push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [p, m1, m2] = times.each_mut().map(median);
    let gib = |t: f64| TOTAL as f64 / t / f64::from(1u32 << 30);
    println!(
        "{rounds} alternated rounds of {} MiB, median throughput:",
        TOTAL >> 20
    );
    println!("  plain stream, 1 link    {:.2} GiB/s", gib(p));
    println!("  multi-link,   1 link    {:.2} GiB/s", gib(m1));
    println!("  multi-link,   2 links   {:.2} GiB/s", gib(m2));
    println!("  2 links / plain 1 link  {:.3}x", p / m2);
    println!("  2 links / multi 1 link  {:.3}x", m1 / m2);
}

criterion_group!(benches, transfer);

fn main() {
    if let Some(n) = std::env::var("MULTILINK_RATIO")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        ratio(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
