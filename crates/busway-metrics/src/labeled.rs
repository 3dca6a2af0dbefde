//! A counter family with one label whose values are fixed words of the code: a reason, a
//! result, a kind, a limit.
//!
//! Such counts happen when something goes wrong or changes (a rejected frame, a reload), not
//! per byte or per session, so a prometheus-client `Family` fits: counting takes its read lock
//! and one hash lookup, and allocates only the first time a value is counted. The values are
//! `&'static str`, so no count can be made to grow the family with text from outside.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};

type Key = [(&'static str, &'static str); 1];

/// `NAME_total{KEY="value"}`. Clones share the counts.
#[derive(Clone, Debug)]
pub struct LabeledCounter {
    key: &'static str,
    family: Family<Key, Counter>,
}

impl LabeledCounter {
    /// A family labelled `key`, with no series until the first count.
    pub fn new(key: &'static str) -> Self {
        LabeledCounter {
            key,
            family: Family::default(),
        }
    }

    /// A family labelled `key` whose `values` are shown at zero before anything is counted:
    /// for the families whose every value is known up front, so a dashboard or an alert rule
    /// can rate them from the first scrape instead of seeing a series appear from nowhere.
    pub fn with_values(key: &'static str, values: &[&'static str]) -> Self {
        let c = LabeledCounter::new(key);
        for value in values {
            let _created = c.family.get_or_create(&[(key, *value)]);
        }
        c
    }

    pub fn inc(&self, value: &'static str) {
        self.family.get_or_create(&[(self.key, value)]).inc();
    }

    pub fn get(&self, value: &'static str) -> u64 {
        self.family.get(&[(self.key, value)]).map_or(0, |c| c.get())
    }
}

impl TypedMetric for LabeledCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for LabeledCounter {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.family.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }

    /// Nothing counted yet: the registry leaves the family out rather than print a `# TYPE`
    /// line without samples.
    fn is_empty(&self) -> bool {
        EncodeMetric::is_empty(&self.family)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn counts_by_value_and_stays_out_of_the_scrape_until_counted() {
        let c = LabeledCounter::new("reason");
        let mut registry = Registry::default();
        registry.register("rejected", "Rejected", c.clone());
        let text = || crate::text(&registry);
        assert_eq!(text(), "");
        c.inc("checksum");
        c.inc("checksum");
        c.inc("oversize");
        assert_eq!(c.get("checksum"), 2);
        assert_eq!(c.get("auth"), 0);
        let t = text();
        assert!(t.contains("# TYPE rejected_total counter\n"), "{t}");
        assert!(t.contains("rejected_total{reason=\"checksum\"} 2\n"), "{t}");
        assert!(t.contains("rejected_total{reason=\"oversize\"} 1\n"), "{t}");
    }

    #[test]
    fn values_given_up_front_are_shown_at_zero() {
        let c = LabeledCounter::with_values("limit", &["a", "b"]);
        let mut registry = Registry::default();
        registry.register("limited", "Limited", c.clone());
        let t = crate::text(&registry);
        assert!(t.contains("limited_total{limit=\"a\"} 0\n"), "{t}");
        assert!(t.contains("limited_total{limit=\"b\"} 0\n"), "{t}");
        c.inc("b");
        let t = crate::text(&registry);
        assert!(t.contains("limited_total{limit=\"b\"} 1\n"), "{t}");
    }
}
