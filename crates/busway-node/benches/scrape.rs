//! Encoding `/metrics` on a node with 1,000 sessions, 64 peers and a gateway service: what one
//! scrape costs the node, without the HTTP around it (`bench/scrape` measures that end to end).

mod fixture;

use std::hint::black_box;

use busway_node::admin::prom::metrics_text;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn scrape(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape");
    for (sessions, peers) in [(1_000, 64), (1_000, 1)] {
        let loaded = fixture::loaded(sessions, peers);
        let size = metrics_text(&loaded.node).len();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{sessions}_sessions_{peers}_peers"), |b| {
            b.iter(|| black_box(metrics_text(black_box(&loaded.node))))
        });
    }
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
