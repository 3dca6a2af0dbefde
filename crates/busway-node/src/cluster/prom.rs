//! `busway_cluster_owner`, `busway_cluster_members`, `busway_cluster_takeovers_total` and
//! `busway_cluster_adverts_rejected_total{reason}` (CONTRACT section 7), read from the state
//! machine at each scrape. Every reason is shown from the start, at 0.

use busway_cluster::RejectReason;
use busway_metrics::prometheus_client::encoding::DescriptorEncoder;
use busway_metrics::prometheus_client::metrics::MetricType;
use busway_metrics::series;

use super::ClusterMember;

pub(crate) fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    c: &ClusterMember,
) -> Result<(), std::fmt::Error> {
    let m = c.metrics();
    let none: [(&str, &str); 0] = [];
    let gauges = [
        (
            "busway_cluster_owner",
            "1 while this node holds the service address.",
            i64::from(m.owner),
        ),
        (
            "busway_cluster_members",
            "Live cluster members, this node included.",
            m.members as i64,
        ),
        (
            "busway_cluster_era",
            "The cluster's era as this node knows it (0 before it joined).",
            i64::from(m.era),
        ),
        (
            "busway_cluster_history_events",
            "Events in the cluster history this node holds.",
            m.history_events as i64,
        ),
    ];
    for (name, help, v) in gauges {
        let mut f = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        series::gauge(&mut f, &none, v)?;
    }
    let counters = [
        ("busway_cluster_takeovers", "Times this node took the service address.", m.takeovers_total),
        ("busway_cluster_suspicions", "Members suspected after missed adverts, whether the probes then found them alive or not.", m.suspicions_total),
        ("busway_cluster_probes", "Direct probes sent to suspected members.", m.probes_total),
    ];
    for (name, help, v) in counters {
        let mut f = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        series::counter(&mut f, &none, v)?;
    }
    let mut f = encoder.encode_descriptor(
        "busway_cluster_adverts_rejected",
        "Cluster datagrams ignored: signature (bad HMAC), cluster (another cluster), malformed, replay (an old or repeated sequence number).",
        None,
        MetricType::Counter,
    )?;
    for r in RejectReason::ALL {
        series::counter(&mut f, &[("reason", r.label())], m.rejected(r))?;
    }
    Ok(())
}
