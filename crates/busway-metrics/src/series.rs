//! One sample of a labelled family, for collectors and custom metrics that read live state.

use prometheus_client::encoding::{EncodeGaugeValue, EncodeLabelSet, MetricEncoder, NoLabelSet};

/// Writes one counter sample (`NAME_total{labels} value`) of the family `family` began.
pub fn counter(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: u64,
) -> Result<(), std::fmt::Error> {
    family
        .encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// Writes one gauge sample (`NAME{labels} value`) of the family `family` began.
pub fn gauge(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: impl EncodeGaugeValue,
) -> Result<(), std::fmt::Error> {
    family.encode_family(labels)?.encode_gauge(&value)
}
