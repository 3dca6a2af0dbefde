//! The run's phases in order, and the report they make.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_discovery::{record_key, Discovery, Settings};
use serde_json::{json, Value};
use tokio::time::timeout;

use crate::etcd::Client;
use crate::events::{Events, Kind, Phase};
use crate::load::{self, Churn};
use crate::metrics;
use crate::node::{record, Keepalives, Sim, OPTIONS};
use crate::procstat::{load1, status_kib, CpuSpan};
use crate::report::latencies;
use crate::watcher::{Oddities, Watcher};
use crate::Args;

/// The most the ramp may take.
const RAMP_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(a: &Args) -> Result<Value, String> {
    let etcd_pid = a.etcd_pid.map(|p| p.to_string());
    let mut shared = Vec::with_capacity(a.conns);
    for _ in 0..a.conns.min(a.nodes) {
        let c = Client::connect(&a.endpoint, OPTIONS)
            .await
            .map_err(|e| format!("connect {}: {e}", a.endpoint))?;
        shared.push(c);
    }
    let conns = if shared.is_empty() {
        a.nodes
    } else {
        shared.len()
    };
    let events = Arc::new(Events::new(a.watchers));
    let keepalives = Arc::new(Keepalives::default());
    let sim = Arc::new(Sim {
        endpoint: a.endpoint.clone(),
        shared,
        prefix: a.prefix.clone(),
        ttl: i64::try_from(a.ttl).unwrap_or(i64::MAX),
        events: events.clone(),
        keepalives: keepalives.clone(),
    });
    let settings = Settings {
        endpoints: vec![a.endpoint.clone()],
        prefix: a.prefix.clone(),
        lease_ttl: Duration::from_secs(a.ttl),
    };
    let odd = Arc::new(Oddities::default());
    let mut watchers = Vec::with_capacity(a.watchers);
    for w in 0..a.watchers {
        let slot = a.nodes + w;
        let s = settings.clone();
        watchers.push(Watcher::start(w, slot, s, events.clone(), odd.clone()).await?);
    }
    let watcher_start_ms: Vec<f64> = watchers.iter().map(|w| ms(w.started_in)).collect();
    eprintln!(
        "scale: {} watchers up; ramp of {} nodes",
        a.watchers, a.nodes
    );

    let t = Instant::now();
    let (mut slots, ramp) = timeout(RAMP_LIMIT, load::ramp(&sim, a.nodes, a.parallel))
        .await
        .map_err(|_| format!("the ramp took more than {} s", RAMP_LIMIT.as_secs()))?;
    let ramp_secs = t.elapsed().as_secs_f64();
    let whole = usize::try_from(ramp.joins).unwrap_or(0) + a.watchers;
    let synced = poll(Duration::from_secs(30), || {
        watchers.iter().all(|w| w.in_view() == whole)
    })
    .await;
    // The views are replaced before the updates go out: the last arrivals are noted just after.
    poll(Duration::from_secs(5), || events.pending().is_empty()).await;
    let (ramp_done, _) = events.take_done();

    // A node starting into the full registry: its snapshot is what it costs.
    let t = Instant::now();
    let probe_record = record("watch-probe", a.nodes + a.watchers, 0);
    let probe = Discovery::start(settings.clone(), probe_record)
        .await
        .map_err(|e| e.to_string())?;
    let snapshot_ms = ms(t.elapsed());
    let probe_saw = probe.view().borrow().nodes.len();
    probe.shutdown().await;
    eprintln!(
        "scale: ramp done in {ramp_secs:.1} s; churning for {} s",
        a.secs
    );

    let etcd_cpu = etcd_pid.as_deref().map(CpuSpan::begin);
    let own_cpu = CpuSpan::begin("self");
    let ka = |k: &Keepalives| {
        (
            k.sent.load(Ordering::Relaxed),
            k.answered.load(Ordering::Relaxed),
        )
    };
    let (sent0, answered0) = ka(&keepalives);
    let load_before = load1();
    let etcd_before = metrics::read(&a.endpoint).await;
    let t = Instant::now();
    let churn = Churn {
        rate: a.nodes as f64 * a.churn / 100.0 / 60.0,
        secs: a.secs,
        away: Duration::from_millis(a.away_ms),
        max_cycles: a.max_cycles,
    };
    let churned = load::churn(&sim, &mut slots, churn).await;
    // What is still on its way gets a few seconds more.
    poll(Duration::from_secs(5), || events.pending().is_empty()).await;
    let span = t.elapsed().as_secs_f64();
    let etcd_did = etcd_before.between(&metrics::read(&a.endpoint).await, span);
    let (sent1, answered1) = ka(&keepalives);
    let pct = |c: Option<CpuSpan>, pid: &str| c.and_then(|c| c.percent(pid, a.clk_tck));
    let etcd_pct = etcd_pid.as_deref().and_then(|p| pct(etcd_cpu, p));
    let own_pct = pct(Some(own_cpu), "self");
    let kib = |field: &str| etcd_pid.as_deref().and_then(|p| status_kib(p, field));
    let (done, strays) = events.take_done();
    let missed = events.pending();
    let up = watchers.iter().filter(|w| w.discovery.up()).count();
    let rejected: u64 = watchers
        .iter()
        .flat_map(|w| w.discovery.rejected())
        .map(|(_, n)| n)
        .sum();
    let in_view: Vec<usize> = watchers.iter().map(Watcher::in_view).collect();
    let copy = watchers.first().map(|w| view_copy(&w.discovery));
    for w in watchers {
        let _ = timeout(Duration::from_secs(3), w.stop()).await;
    }

    let sample = record("n00001", 1, 123_456).to_json().len()
        + record_key(&a.prefix, "default", "n00001").len();
    let per_s = |n: u64| (n as f64 / span * 10.0).round() / 10.0;
    Ok(json!({
        "nodes": a.nodes, "watchers": a.watchers, "conns": conns, "ttl_s": a.ttl,
        "churn_pct_min": a.churn, "churn_secs": a.secs, "away_ms": a.away_ms,
        "record_bytes": sample,
        "watcher_start_ms": watcher_start_ms,
        "ramp": {
            "secs": (ramp_secs * 100.0).round() / 100.0, "joins": ramp.joins,
            "failed": ramp.failed, "failures": ramp.failures,
            "watchers_synced": synced,
            "latency": latencies(&ramp_done, Phase::Ramp, None),
        },
        "snapshot": {"ms": snapshot_ms, "records": probe_saw},
        "view_copy_us": copy.map(|c| c.0),
        "view_bytes_per_record": copy.and_then(|c| c.1),
        "churn": {
            "secs": (span * 10.0).round() / 10.0,
            "leaves": churned.leaves, "joins": churned.joins, "failed": churned.failed,
            "failures": churned.failures, "stuck": churned.stuck,
            "changes_per_s": per_s(churned.leaves + churned.joins),
            "latency": latencies(&done, Phase::Churn, None),
            "join": latencies(&done, Phase::Churn, Some(Kind::Join)),
            "leave": latencies(&done, Phase::Churn, Some(Kind::Leave)),
            "missed": missed.len(),
            "missed_detail": missed.iter().take(5).map(|(p, k, seen, age)|
                format!("{p:?} {k:?}: {seen} of {} watchers after {:.1} s", a.watchers, age.as_secs_f64()))
                .collect::<Vec<_>>(),
        },
        "keepalives": {
            "sent_per_s": per_s(sent1 - sent0), "answered_per_s": per_s(answered1 - answered0),
            "expected_per_s": (a.nodes as f64 / (a.ttl as f64 / 3.0) * 10.0).round() / 10.0,
            "broken": keepalives.broken.load(Ordering::Relaxed),
        },
        "watchers_end": {
            "up": up, "in_view": in_view, "rejected": rejected, "strays": strays,
            "resets": odd.resets.load(Ordering::Relaxed),
            "lagged": odd.lagged.load(Ordering::Relaxed),
        },
        "etcd": {"cpu_pct": etcd_pct.map(round1), "rss_kib": kib("VmRSS"), "hwm_kib": kib("VmHWM")},
        "etcd_metrics": etcd_did,
        "bench_process": {"cpu_pct": own_pct.map(round1), "rss_kib": status_kib("self", "VmRSS")},
        "load1": {"before": load_before, "after": load1()},
    }))
}

/// What one change costs a node's view beyond the change itself: the view is a map shared
/// with its readers, so a change while a reader holds it copies the whole map
/// (`Arc::make_mut` in `src/view.rs`), and the discovery's watch channel always holds one.
/// Returns the CPU time of one copy in µs (this thread's CPU clock, so time spent waiting for
/// a core on a busy machine is not counted) and the bytes a record takes in a copy (from this
/// process's RSS while ten copies are held, so roughly).
fn view_copy(d: &Discovery) -> (f64, Option<u64>) {
    use rustix::time::{clock_gettime, ClockId};
    let cpu = || {
        let t = clock_gettime(ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    };
    let nodes = d.view().borrow().nodes.clone();
    let before = status_kib("self", "VmRSS");
    let t = cpu();
    let copies: Vec<_> = (0..10)
        .map(|_| std::hint::black_box((*nodes).clone()))
        .collect();
    let us = ((cpu() - t) / 10.0 * 1e7).round() / 10.0;
    let after = status_kib("self", "VmRSS");
    let records = (copies.len() * nodes.len().max(1)) as u64;
    drop(copies);
    let per = before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) * 1024 / records);
    (us, per)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Polls `cond` every 10 ms for up to `limit`: whether it came true.
async fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
