//! The gateway's Prometheus families, read from the gateways when the node's registry is
//! encoded.
//!
//! Upstreams come and go (reload, the admin API) and keep their counters on themselves, so a
//! prometheus-client `Collector` reads them at scrape time: a removed upstream's series go with
//! it. Upstreams are labelled by address, which is what an operator wrote and what stays
//! meaningful across restarts (ids are handed out per process).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use busway_metrics::prometheus_client::collector;
use busway_metrics::prometheus_client::encoding::DescriptorEncoder;
use busway_metrics::prometheus_client::metrics::MetricType;
use busway_metrics::series;

use crate::gateway::{Gateway, GatewayStats};
use crate::upstream::{Upstream, UpstreamStats};

/// Lists the gateways to report at each scrape.
type Source = dyn Fn() -> Vec<Arc<Gateway>> + Send + Sync;

/// The gateway families, for the gateways `source` lists when the registry is encoded.
pub struct Collector {
    source: Box<Source>,
}

impl Collector {
    pub fn new(source: impl Fn() -> Vec<Arc<Gateway>> + Send + Sync + 'static) -> Self {
        Collector {
            source: Box::new(source),
        }
    }
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("busway_grpc::metrics::Collector")
            .finish_non_exhaustive()
    }
}

/// A pair of counters of an upstream told apart by one label: (family, help, label, values,
/// the two counters).
type UpstreamPair = (
    &'static str,
    &'static str,
    &'static str,
    [&'static str; 2],
    fn(&UpstreamStats) -> [&AtomicU64; 2],
);

const UPSTREAM_PAIRS: [UpstreamPair; 4] = [
    (
        "busway_upstream_messages",
        "Messages: in = to the upstream, out = from it.",
        "direction",
        ["in", "out"],
        |s| [&s.msgs_in, &s.msgs_out],
    ),
    (
        "busway_upstream_bytes",
        "Payload bytes: in = to the upstream, out = from it.",
        "direction",
        ["in", "out"],
        |s| [&s.bytes_in, &s.bytes_out],
    ),
    (
        "busway_upstream_lost_messages",
        "Messages of a failed call: queued = never sent, unconfirmed = sent after the last \
         answered heartbeat.",
        "stage",
        ["queued", "unconfirmed"],
        |s| [&s.lost_queued, &s.unconfirmed],
    ),
    (
        "busway_upstream_lost_bytes",
        "Payload bytes of the lost messages: queued = never sent, unconfirmed = sent after the \
         last answered heartbeat.",
        "stage",
        ["queued", "unconfirmed"],
        |s| [&s.lost_queued_bytes, &s.unconfirmed_bytes],
    ),
];

/// The service-wide counters: (family, help, counter).
type GatewayCount = (&'static str, &'static str, fn(&GatewayStats) -> &AtomicU64);

const GATEWAY_COUNTS: [GatewayCount; 5] = [
    (
        "busway_grpc_reassignments",
        "Downstreams moved to another upstream because theirs stopped being healthy.",
        |s| &s.reassignments,
    ),
    (
        "busway_grpc_unknown_uuid",
        "Replies dropped: no downstream has their uuid, or they name no target.",
        |s| &s.unknown_uuid,
    ),
    (
        "busway_grpc_overflow",
        "Downstreams closed because they did not read and their queue was full.",
        |s| &s.overflow,
    ),
    (
        "busway_grpc_no_upstream",
        "New clients closed because no upstream was ready within upstream_wait.",
        |s| &s.no_upstream,
    ),
    (
        "busway_grpc_events_dropped",
        "Lifecycle events not sent: their upstream had EVENT_QUEUE events waiting, was \
         closing, or none was healthy.",
        |s| &s.events_dropped,
    ),
];

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gateways = (self.source)();
        if gateways.is_empty() {
            return Ok(());
        }
        let upstreams: Vec<(&Gateway, Arc<Upstream>, String)> = gateways
            .iter()
            .flat_map(|g| {
                g.upstream_list().into_iter().map(move |u| {
                    let address = u.address.to_string();
                    (&**g, u, address)
                })
            })
            .collect();
        encode_upstreams(&mut encoder, &upstreams)?;
        encode_gateways(&mut encoder, &gateways)
    }
}

/// The labels of an upstream's samples.
fn labels<'a>(g: &'a Gateway, address: &'a str) -> [(&'static str, &'a str); 2] {
    [("service", &*g.service), ("upstream", address)]
}

fn encode_upstreams(
    encoder: &mut DescriptorEncoder<'_>,
    upstreams: &[(&Gateway, Arc<Upstream>, String)],
) -> Result<(), std::fmt::Error> {
    if upstreams.is_empty() {
        return Ok(());
    }
    {
        let mut family = encoder.encode_descriptor(
            "busway_upstream_ready",
            "1 while the upstream takes downstreams: ready, live and its call open.",
            None,
            MetricType::Gauge,
        )?;
        for (g, u, a) in upstreams {
            series::gauge(&mut family, &labels(g, a), i64::from(u.healthy()))?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "busway_upstream_downstreams",
            "Downstreams assigned to the upstream.",
            None,
            MetricType::Gauge,
        )?;
        for (g, u, a) in upstreams {
            let n = u.downstreams.load(Ordering::Relaxed);
            series::gauge(&mut family, &labels(g, a), n)?;
        }
    }
    for (name, help, key, values, pick) in UPSTREAM_PAIRS {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (g, u, a) in upstreams {
            for (value, counter) in values.into_iter().zip(pick(&u.stats)) {
                let [service, upstream] = labels(g, a);
                let labels = [service, upstream, (key, value)];
                series::counter(&mut family, &labels, get(counter))?;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "busway_upstream_failures",
        "Connections to the upstream that ended other than by removal.",
        None,
        MetricType::Counter,
    )?;
    for (g, u, a) in upstreams {
        series::counter(&mut family, &labels(g, a), get(&u.stats.failures))?;
    }
    Ok(())
}

fn encode_gateways(
    encoder: &mut DescriptorEncoder<'_>,
    gateways: &[Arc<Gateway>],
) -> Result<(), std::fmt::Error> {
    {
        let mut family = encoder.encode_descriptor(
            "busway_grpc_downstreams",
            "Attached downstreams.",
            None,
            MetricType::Gauge,
        )?;
        for g in gateways {
            let service = [("service", &*g.service)];
            series::gauge(&mut family, &service, g.downstream_count())?;
        }
    }
    for (name, help, pick) in GATEWAY_COUNTS {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for g in gateways {
            let service = [("service", &*g.service)];
            series::counter(&mut family, &service, get(pick(&g.stats)))?;
        }
    }
    Ok(())
}
