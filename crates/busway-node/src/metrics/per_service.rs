//! The per-service families, read from the services' atomics when the registry encodes them.
//!
//! A prometheus-client custom metric: one [`ServiceFamily`] is registered for each family, and
//! encodes a sample per service (in name order) from the [`ServiceMetrics`] that sessions
//! count into. Nothing is created per scrape or per count.

use std::sync::atomic::{AtomicU64, Ordering};

use busway_metrics::prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use busway_metrics::prometheus_client::metrics::MetricType;
use busway_metrics::series;

use super::{ServiceMetrics, Services, OUTCOMES};

/// Which family of a service's counters.
#[derive(Clone, Copy, Debug)]
pub(super) enum Series {
    /// `busway_sessions_active{service}`, a gauge.
    Active,
    /// `busway_sessions_total{service,outcome}`.
    Sessions,
    /// `busway_bytes_total{service,direction}`.
    Bytes,
    /// `busway_mirror_dropped_total{service}`.
    MirrorDropped,
}

#[derive(Debug)]
pub(super) struct ServiceFamily {
    services: Services,
    series: Series,
}

impl ServiceFamily {
    pub(super) fn new(services: &Services, series: Series) -> Self {
        ServiceFamily {
            services: services.clone(),
            series,
        }
    }

    fn encode_one(
        &self,
        family: &mut MetricEncoder<'_>,
        name: &str,
        m: &ServiceMetrics,
    ) -> Result<(), std::fmt::Error> {
        let service = ("service", name);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        match self.series {
            Series::Active => {
                series::gauge(family, &[service], m.active.load(Ordering::Relaxed))?;
            }
            Series::Sessions => {
                for (outcome, n) in OUTCOMES.iter().zip(&m.outcomes) {
                    series::counter(family, &[service, ("outcome", *outcome)], get(n))?;
                }
            }
            Series::Bytes => {
                for (direction, n) in [("in", &m.bytes_in), ("out", &m.bytes_out)] {
                    series::counter(family, &[service, ("direction", direction)], get(n))?;
                }
            }
            Series::MirrorDropped => {
                series::counter(family, &[service], get(&m.mirror_dropped))?;
            }
        }
        Ok(())
    }
}

impl EncodeMetric for ServiceFamily {
    fn encode(&self, mut family: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Services are added at start and on reload only, never by a session, so holding the
        // lock while encoding holds up no traffic.
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        for (name, m) in services.iter() {
            self.encode_one(&mut family, name, m)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        match self.series {
            Series::Active => MetricType::Gauge,
            Series::Sessions | Series::Bytes | Series::MirrorDropped => MetricType::Counter,
        }
    }

    fn is_empty(&self) -> bool {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}
