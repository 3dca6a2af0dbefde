//! A histogram of durations with fixed buckets, kept in atomics.
//!
//! prometheus-client's own `Histogram` takes a mutex for every observation and copies its
//! buckets into a new vector for every scrape. Session set-up is observed once per session, on
//! the session path, where busway counts with relaxed atomic adds only; this one costs two of
//! them per observation and nothing to read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// The most finite buckets a histogram may have (the `+Inf` bucket comes on top), so that a
/// scrape can lay them out on the stack.
pub const MAX_BUCKETS: usize = 31;

/// Durations by upper bound in seconds, plus their sum. Clones share the counts, so the clone
/// registered with a registry sees what the original observes.
#[derive(Clone, Debug)]
pub struct DurationHistogram<const N: usize>(Arc<Inner<N>>);

#[derive(Debug)]
struct Inner<const N: usize> {
    bounds: [f64; N],
    /// Observations in each finite bucket alone (not cumulative).
    counts: [AtomicU64; N],
    /// Observations beyond the last bound.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> DurationHistogram<N> {
    /// A histogram whose buckets end at `bounds` seconds (ascending) and at `+Inf`.
    pub fn new(bounds: [f64; N]) -> Self {
        const { assert!(N <= MAX_BUCKETS, "too many buckets") };
        DurationHistogram(Arc::new(Inner {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let inner = &*self.0;
        let bucket = inner
            .bounds
            .iter()
            .position(|b| s <= *b)
            .and_then(|i| inner.counts.get(i))
            .unwrap_or(&inner.over);
        bucket.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        let inner = &*self.0;
        inner
            .counts
            .iter()
            .chain(std::iter::once(&inner.over))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl<const N: usize> TypedMetric for DurationHistogram<N> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl<const N: usize> EncodeMetric for DurationHistogram<N> {
    /// The count is the sum of the buckets as read, so `_count` always equals the `+Inf`
    /// bucket; the sum is read on its own and may include an observation the buckets do not
    /// show yet, which Prometheus tolerates.
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.0;
        let mut buckets = [(0.0, 0u64); MAX_BUCKETS + 1];
        let mut count = 0u64;
        for (slot, (bound, n)) in buckets
            .iter_mut()
            .zip(inner.bounds.iter().zip(&inner.counts))
        {
            let n = n.load(Ordering::Relaxed);
            count += n;
            *slot = (*bound, n);
        }
        let over = inner.over.load(Ordering::Relaxed);
        count += over;
        if let Some(slot) = buckets.get_mut(N) {
            *slot = (f64::INFINITY, over);
        }
        let sum = inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            count,
            buckets.get(..=N).unwrap_or_default(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_inf() {
        let h = DurationHistogram::new([0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(2));
        assert_eq!(h.count(), 4);
        let mut registry = Registry::default();
        registry.register("setup_seconds", "Set-up", h.clone());
        let text = crate::text(&registry);
        assert!(text.contains("# TYPE setup_seconds histogram\n"), "{text}");
        assert!(
            text.contains("setup_seconds_bucket{le=\"0.001\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("setup_seconds_bucket{le=\"0.01\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("setup_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("setup_seconds_count 4\n"), "{text}");
        assert!(text.contains("setup_seconds_sum 2.0065\n"), "{text}");
    }

    #[test]
    fn a_duration_beyond_u64_nanoseconds_saturates_instead_of_panicking() {
        let h = DurationHistogram::new([1.0]);
        h.observe(Duration::MAX);
        assert_eq!(h.count(), 1);
    }
}
