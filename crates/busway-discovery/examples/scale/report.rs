//! The latency figures of a set of changes, as JSON: p50, p99 and max, in milliseconds.

use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{percentile, Done, Kind, Phase};

/// The changes of `phase` (of `kind`, or both): until every watcher had each (`all`), until
/// each watcher had it (`each`, one sample per watcher and change), and until etcd answered
/// the write (`write`), and from that answer to the last watcher (`after_write`).
pub fn latencies(done: &[Done], phase: Phase, kind: Option<Kind>) -> Value {
    let picked: Vec<&Done> = done
        .iter()
        .filter(|d| d.phase == phase && kind.is_none_or(|k| d.kind == k))
        .collect();
    let mut all: Vec<Duration> = picked.iter().map(|d| d.all()).collect();
    let mut each: Vec<Duration> = picked.iter().flat_map(|d| d.each.clone()).collect();
    let mut write: Vec<Duration> = picked.iter().filter_map(|d| d.write).collect();
    // What the fan-out adds to the commit: from etcd's answer to the writer to the last view.
    let mut after: Vec<Duration> = picked
        .iter()
        .filter_map(|d| Some(d.all().saturating_sub(d.write?)))
        .collect();
    json!({
        "changes": picked.len(),
        "all_ms": spread(&mut all),
        "each_ms": spread(&mut each),
        "write_ms": spread(&mut write),
        "after_write_ms": spread(&mut after),
    })
}

fn spread(v: &mut [Duration]) -> Value {
    v.sort_unstable();
    let v = &*v;
    let ms = |q: f64| percentile(v, q).map(|d| (d.as_secs_f64() * 1e5).round() / 100.0);
    json!({"p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0)})
}
