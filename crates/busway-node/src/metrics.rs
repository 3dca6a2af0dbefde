//! The node's instruments: what sessions, transports and reloads count, and how the one
//! registry of `/metrics` (built in `admin::prom`) reads them.
//!
//! Per-service counters are plain atomics in [`ServiceMetrics`], which sessions hold directly, so
//! counting a chunk of bytes or a finished session is one relaxed add on the service's own
//! struct. The registry reads them at scrape time through the custom metrics of
//! [`per_service`], rather than through prometheus-client `Family`s of counters, whose handles
//! would add a pointer to follow to every count. Counts keyed by a reason are
//! [`LabeledCounter`]s; what lives elsewhere (transports, target sets, gateways) is read at
//! scrape time by the collector of [`live`] and by the gateway's own.

mod handshake_log;
mod limit;
pub mod live;
mod per_service;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use busway_metrics::prometheus_client::registry::Registry;
use busway_metrics::{DurationHistogram, LabeledCounter};

use per_service::{Series, ServiceFamily};

pub use handshake_log::HandshakeLog;
pub use limit::{Limit, LimitLog};

/// Session outcomes, the `outcome` label of `busway_sessions_total`.
pub const OUTCOMES: [&str; 5] = ["ok", "refused", "timeout", "error", "forbidden"];

/// Where a session whose outcome is not one of [`OUTCOMES`] is counted.
const ERROR: usize = 3;

#[derive(Debug, Default)]
pub struct ServiceMetrics {
    pub active: AtomicI64,
    outcomes: [AtomicU64; OUTCOMES.len()],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Mirrors cut off because they could not keep up.
    pub mirror_dropped: AtomicU64,
}

impl ServiceMetrics {
    /// Counts a finished session; `outcome` must be one of [`OUTCOMES`] (anything else is `error`).
    pub fn finished(&self, outcome: &str) {
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(ERROR);
        if let Some(c) = self.outcomes.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn outcome_count(&self, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.outcomes.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Session set-up time buckets, in seconds.
pub const SETUP_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// Every service's counters by name, shared by [`Metrics`] and the families that read them.
type Services = Arc<Mutex<BTreeMap<Arc<str>, Arc<ServiceMetrics>>>>;

#[derive(Debug)]
pub struct Metrics {
    services: Services,
    pub handshake_failures: LabeledCounter,
    pub frames_rejected: LabeledCounter,
    pub config_reloads: LabeledCounter,
    pub handshakes: LabeledCounter,
    /// `busway_limit_rejections_total{limit}`, every [`Limit`] shown from the start; count
    /// through [`Metrics::limit_rejected`].
    pub limit_rejections: LabeledCounter,
    /// Keeps refusals by a limit to a log line per second per limit and service.
    pub limit_log: LimitLog,
    /// Keeps the ends of bus connections whose peer proved nothing to a log line per second
    /// per reason.
    pub handshake_log: HandshakeLog,
    pub setup: DurationHistogram<{ SETUP_BUCKETS.len() }>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            services: Services::default(),
            handshake_failures: LabeledCounter::new("reason"),
            frames_rejected: LabeledCounter::new("reason"),
            config_reloads: LabeledCounter::new("result"),
            handshakes: LabeledCounter::new("kind"),
            limit_rejections: LabeledCounter::with_values("limit", &Limit::labels()),
            limit_log: LimitLog::default(),
            handshake_log: HandshakeLog::default(),
            setup: DurationHistogram::new(SETUP_BUCKETS),
        }
    }
}

impl Metrics {
    /// The counters of `service`, created on first use and kept across reloads.
    pub fn service(&self, service: &str) -> Arc<ServiceMetrics> {
        let mut m = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get(service) {
            return s.clone();
        }
        let s = Arc::new(ServiceMetrics::default());
        m.insert(service.into(), s.clone());
        s
    }

    /// Counts a connection or session that `limit` refused.
    pub fn limit_rejected(&self, limit: Limit) {
        self.limit_rejections.inc(limit.label());
    }

    /// Counts a refusal by `limit` and logs it at most once per second per limit and service
    /// (see [`LimitLog::refused`]): `what` is "session" or "transport", `client` the refused
    /// address when there is one.
    pub fn limit_refused(
        &self,
        limit: Limit,
        service: &str,
        what: &str,
        client: Option<&dyn std::fmt::Display>,
    ) {
        self.limit_rejected(limit);
        self.limit_log.refused(limit, service, what, client);
    }

    /// Registers every family of the node's own counters. The registry shares them, so what is
    /// counted later is what it encodes. Names are without `_total`: prometheus-client adds it
    /// to a counter's samples.
    pub fn register(&self, registry: &mut Registry) {
        for (name, help, series) in [
            ("busway_sessions_active", "Open sessions", Series::Active),
            (
                "busway_sessions",
                "Finished sessions by outcome",
                Series::Sessions,
            ),
            (
                "busway_bytes",
                "Bytes carried: in = client to targets, out = targets to client",
                Series::Bytes,
            ),
            (
                "busway_mirror_dropped",
                "Mirror copies cut off because the mirror could not keep up",
                Series::MirrorDropped,
            ),
        ] {
            registry.register(name, help, ServiceFamily::new(&self.services, series));
        }
        registry.register(
            "busway_session_setup_seconds",
            "Time from accepting a session to reaching its target",
            self.setup.clone(),
        );
        for (name, help, counter) in [
            (
                "busway_handshake_failures",
                "Bus handshakes that failed",
                &self.handshake_failures,
            ),
            (
                "busway_frames_rejected",
                "Bus transports closed for bytes that are not the bus protocol",
                &self.frames_rejected,
            ),
            (
                "busway_config_reloads",
                "Configuration reloads",
                &self.config_reloads,
            ),
            (
                "busway_handshakes",
                "Bus handshakes completed, by kind (full or resumed)",
                &self.handshakes,
            ),
            (
                "busway_limit_rejections",
                "Connections and sessions refused by a limit",
                &self.limit_rejections,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use busway_metrics::prometheus_client::encoding::prometheus_text;

    use super::*;

    fn text(m: &Metrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).expect("encodes");
        text
    }

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        let s = m.service("chat");
        s.finished("refused");
        s.finished("bogus");
        s.bytes_in.fetch_add(42, Ordering::Relaxed);
        s.active.fetch_add(2, Ordering::Relaxed);
        m.setup.observe(Duration::from_micros(300));
        m.frames_rejected.inc("checksum");
        m.limit_rejected(Limit::MaxSessionsPerClient);
        let text = text(&m);
        for line in [
            "busway_sessions_active{service=\"chat\"} 2\n",
            "busway_sessions_total{service=\"chat\",outcome=\"refused\"} 1\n",
            "busway_sessions_total{service=\"chat\",outcome=\"error\"} 1\n",
            "busway_sessions_total{service=\"chat\",outcome=\"forbidden\"} 0\n",
            "busway_bytes_total{service=\"chat\",direction=\"in\"} 42\n",
            "busway_bytes_total{service=\"chat\",direction=\"out\"} 0\n",
            "busway_mirror_dropped_total{service=\"chat\"} 0\n",
            "busway_session_setup_seconds_bucket{le=\"0.00025\"} 0\n",
            "busway_session_setup_seconds_bucket{le=\"0.0005\"} 1\n",
            "busway_session_setup_seconds_count 1\n",
            "busway_frames_rejected_total{reason=\"checksum\"} 1\n",
            "busway_limit_rejections_total{limit=\"max_sessions\"} 0\n",
            "busway_limit_rejections_total{limit=\"max_sessions_per_client\"} 1\n",
            "busway_limit_rejections_total{limit=\"new_sessions_per_client\"} 0\n",
            "busway_limit_rejections_total{limit=\"max_transports\"} 0\n",
            "# TYPE busway_bytes_total counter\n",
            "# TYPE busway_sessions_active gauge\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // Families with nothing counted yet are left out.
        assert!(!text.contains("busway_config_reloads"), "{text}");
    }

    #[test]
    fn a_service_keeps_its_counters_and_its_name_is_escaped() {
        let m = Metrics::default();
        m.service("a\"b").bytes_out.fetch_add(7, Ordering::Relaxed);
        assert_eq!(m.service("a\"b").bytes_out.load(Ordering::Relaxed), 7);
        let text = text(&m);
        assert!(
            text.contains("busway_bytes_total{service=\"a\\\"b\",direction=\"out\"} 7\n"),
            "{text}"
        );
    }
}
