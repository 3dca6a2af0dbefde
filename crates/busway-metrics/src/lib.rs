//! busway-metrics: the building blocks of busway's Prometheus exposition on top of
//! [`prometheus_client`] (re-exported, so the node and the gateway register into one registry
//! of one version, and encode it with its Prometheus text encoder).
//!
//! - [`series`]: one sample of a labelled family, for collectors and custom metrics;
//! - [`histogram`]: a histogram of durations kept in atomics;
//! - [`labeled`]: a counter family with one label whose values are fixed words of the code.

pub mod histogram;
pub mod labeled;
pub mod series;

pub use histogram::DurationHistogram;
pub use labeled::LabeledCounter;
pub use prometheus_client;

/// The Prometheus text of `registry`, for tests (the node's `/metrics` handles errors itself).
#[cfg(test)]
fn text(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry).expect("encodes");
    out
}
