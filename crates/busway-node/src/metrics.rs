//! Prometheus metrics, kept as plain atomics and rendered by hand.
//!
//! The set of series is small and fixed by the contract, so a registry crate would add more code
//! than it saves. Per-service counters live in [`ServiceMetrics`], which sessions hold directly so
//! the hot path is one relaxed atomic add.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Session outcomes, the `outcome` label of `busway_sessions_total`.
pub const OUTCOMES: [&str; 4] = ["ok", "refused", "timeout", "error"];

#[derive(Debug, Default)]
pub struct ServiceMetrics {
    pub active: AtomicI64,
    outcomes: [AtomicU64; 4],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Mirrors cut off because they could not keep up.
    pub mirror_dropped: AtomicU64,
}

impl ServiceMetrics {
    /// Counts a finished session; `outcome` must be one of [`OUTCOMES`] (anything else is `error`).
    pub fn finished(&self, outcome: &str) {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(3);
        self.outcomes[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn outcome_count(&self, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map(|i| self.outcomes[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

/// A counter family with one label.
#[derive(Debug, Default)]
pub struct LabeledCounter(Mutex<BTreeMap<String, u64>>);

impl LabeledCounter {
    pub fn inc(&self, label: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(label.to_string()).or_default() += 1;
    }
    pub fn get(&self, label: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(label).copied().unwrap_or(0)
    }
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Session set-up time buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// A gauge sample computed at render time (transports, RTTs).
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    services: Mutex<BTreeMap<String, Arc<ServiceMetrics>>>,
    pub handshake_failures: LabeledCounter,
    pub frames_rejected: LabeledCounter,
    pub config_reloads: LabeledCounter,
    pub setup: Histogram,
}

impl Metrics {
    /// The counters of `service`, created on first use and kept across reloads.
    pub fn service(&self, service: &str) -> Arc<ServiceMetrics> {
        let mut m = self.services.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(service.to_string()).or_default().clone()
    }

    /// The Prometheus text exposition, with `extra` gauges appended.
    pub fn render(&self, extra: &[Sample]) -> String {
        let mut out = String::with_capacity(4096);
        let services = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        header(
            &mut out,
            "busway_sessions_active",
            "gauge",
            "Open sessions.",
        );
        for (s, m) in &services {
            let v = m.active.load(Ordering::Relaxed);
            let _ = writeln!(out, "busway_sessions_active{{service=\"{}\"}} {v}", esc(s));
        }
        header(
            &mut out,
            "busway_sessions_total",
            "counter",
            "Finished sessions by outcome.",
        );
        for (s, m) in &services {
            for o in OUTCOMES {
                let _ = writeln!(
                    out,
                    "busway_sessions_total{{service=\"{}\",outcome=\"{o}\"}} {}",
                    esc(s),
                    m.outcome_count(o)
                );
            }
        }
        header(
            &mut out,
            "busway_bytes_total",
            "counter",
            "Bytes carried: in = client to targets, out = targets to client.",
        );
        for (s, m) in &services {
            let s = esc(s);
            let i = m.bytes_in.load(Ordering::Relaxed);
            let o = m.bytes_out.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "busway_bytes_total{{service=\"{s}\",direction=\"in\"}} {i}"
            );
            let _ = writeln!(
                out,
                "busway_bytes_total{{service=\"{s}\",direction=\"out\"}} {o}"
            );
        }
        header(
            &mut out,
            "busway_mirror_dropped_total",
            "counter",
            "Mirror copies cut off because the mirror could not keep up.",
        );
        for (s, m) in &services {
            let v = m.mirror_dropped.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "busway_mirror_dropped_total{{service=\"{}\"}} {v}",
                esc(s)
            );
        }
        header(
            &mut out,
            "busway_session_setup_seconds",
            "histogram",
            "Time from accepting a session to reaching its target.",
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.setup.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "busway_session_setup_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.setup.count.load(Ordering::Relaxed);
        let sum = self.setup.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "busway_session_setup_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "busway_session_setup_seconds_sum {sum}");
        let _ = writeln!(out, "busway_session_setup_seconds_count {count}");
        for (name, help, c, label) in [
            (
                "busway_handshake_failures_total",
                "Bus handshakes that failed.",
                &self.handshake_failures,
                "reason",
            ),
            (
                "busway_frames_rejected_total",
                "Bus transports closed for bytes that are not the bus protocol.",
                &self.frames_rejected,
                "reason",
            ),
            (
                "busway_config_reloads_total",
                "Configuration reloads.",
                &self.config_reloads,
                "result",
            ),
        ] {
            header(&mut out, name, "counter", help);
            for (l, v) in c.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", esc(&l));
            }
        }
        let mut last = "";
        for s in extra {
            if s.name != last {
                header(&mut out, s.name, "gauge", "");
                last = s.name;
            }
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {}", s.name, labels.join(","), s.value);
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    if !help.is_empty() {
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        let s = m.service("chat");
        s.finished("refused");
        s.finished("bogus");
        s.bytes_in.fetch_add(42, Ordering::Relaxed);
        m.setup.observe(Duration::from_micros(300));
        m.frames_rejected.inc("checksum");
        let text = m.render(&[Sample {
            name: "busway_peer_rtt_seconds",
            labels: vec![("peer", "a\"b".into())],
            value: 0.5,
        }]);
        assert!(text.contains("busway_sessions_total{service=\"chat\",outcome=\"refused\"} 1"));
        assert!(text.contains("busway_sessions_total{service=\"chat\",outcome=\"error\"} 1"));
        assert!(text.contains("busway_bytes_total{service=\"chat\",direction=\"in\"} 42"));
        assert!(text.contains("busway_session_setup_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("busway_session_setup_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("busway_frames_rejected_total{reason=\"checksum\"} 1"));
        assert!(text.contains("busway_peer_rtt_seconds{peer=\"a\\\"b\"} 0.5"));
    }
}
