//! What `/metrics` reads from the running node when it is scraped: the transports to each peer
//! and the DNS failures of each service's target set.
//!
//! These values live in the transports and target sets themselves, which come and go with
//! connections and reloads, so a prometheus-client `Collector` reads them while the registry is
//! encoded instead of mirroring them into registered metrics.

use std::sync::{Arc, Weak};
use std::time::Duration;

use busway_metrics::prometheus_client::collector::Collector;
use busway_metrics::prometheus_client::encoding::DescriptorEncoder;
use busway_metrics::prometheus_client::metrics::MetricType;
use busway_metrics::series;

use crate::bus::Transport;
use crate::node::Node;
use crate::service::ServiceState;

/// Reads the node it was made for; a node that is gone contributes nothing.
#[derive(Debug)]
pub struct NodeCollector {
    node: Weak<Node>,
}

impl NodeCollector {
    pub fn new(node: Weak<Node>) -> Self {
        NodeCollector { node }
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(node) = self.node.upgrade() else {
            return Ok(());
        };
        encode_peers(&mut encoder, &node.transports.all())?;
        encode_dns(&mut encoder, &node.services())?;
        if let Some(c) = node.cluster() {
            crate::cluster::prom::encode(&mut encoder, c)?;
        }
        match node.discovery() {
            Some(d) => encode_discovery(&mut encoder, d),
            None => Ok(()),
        }
    }
}

/// One transport, as the peer families see it.
struct Row {
    /// The peer's node name once the handshake told it, else its address.
    peer: String,
    state: &'static str,
    rtt: Option<Duration>,
    /// Held for this node's sessions, and on its way to the peer.
    buffered: (u64, u64),
}

/// `busway_peer_transports{peer,state}`, `busway_peer_rtt_seconds{peer}` and
/// `busway_peer_buffered_bytes{peer,direction}`, a sample per peer (and state).
fn encode_peers(
    encoder: &mut DescriptorEncoder<'_>,
    transports: &[Arc<Transport>],
) -> Result<(), std::fmt::Error> {
    let mut rows: Vec<Row> = transports
        .iter()
        .map(|t| {
            let state = t.state();
            let peer = match t.node() {
                n if n.is_empty() => t.peer.clone(),
                n => n,
            };
            Row {
                peer,
                state,
                rtt: (state == "up").then(|| t.rtt()),
                buffered: t.buffered(),
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by(|a, b| (&a.peer, a.state).cmp(&(&b.peer, b.state)));
    {
        let mut family = encoder.encode_descriptor(
            "busway_peer_transports",
            "Bus transports by peer and state (handshaking, up, down).",
            None,
            MetricType::Gauge,
        )?;
        for group in rows.chunk_by(|a, b| a.peer == b.peer && a.state == b.state) {
            if let Some(first) = group.first() {
                let labels = [("peer", first.peer.as_str()), ("state", first.state)];
                series::gauge(&mut family, &labels, group.len())?;
            }
        }
    }
    if rows.iter().any(|r| r.rtt.is_some()) {
        let mut family = encoder.encode_descriptor(
            "busway_peer_rtt_seconds",
            "Round-trip time to the peer: the highest of its established transports'.",
            None,
            MetricType::Gauge,
        )?;
        for group in rows.chunk_by(|a, b| a.peer == b.peer) {
            let rtt = group.iter().filter_map(|r| r.rtt).max();
            if let (Some(first), Some(rtt)) = (group.first(), rtt) {
                let labels = [("peer", first.peer.as_str())];
                series::gauge(&mut family, &labels, rtt.as_secs_f64())?;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "busway_peer_buffered_bytes",
        "What the transports to the peer hold in memory: in = received for this node's \
         sessions and not yet taken by them, out = written by them and not yet in the socket.",
        None,
        MetricType::Gauge,
    )?;
    for group in rows.chunk_by(|a, b| a.peer == b.peer) {
        let (held_in, held_out) = group.iter().fold((0u64, 0u64), |(i, o), r| {
            (i + r.buffered.0, o + r.buffered.1)
        });
        if let Some(first) = group.first() {
            for (direction, n) in [("in", held_in), ("out", held_out)] {
                let labels = [("peer", first.peer.as_str()), ("direction", direction)];
                series::gauge(&mut family, &labels, n)?;
            }
        }
    }
    Ok(())
}

/// `busway_dns_lookup_failures_total{service}`: a counter kept by each service's target set.
fn encode_dns(
    encoder: &mut DescriptorEncoder<'_>,
    services: &[Arc<ServiceState>],
) -> Result<(), std::fmt::Error> {
    if services.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(
        "busway_dns_lookup_failures",
        "DNS lookups of the service's targets that failed (the last good answer was kept).",
        None,
        MetricType::Counter,
    )?;
    for s in services {
        let failures = s.targets().lookup_failures() as u64;
        series::counter(&mut family, &[("service", &*s.name)], failures)?;
    }
    Ok(())
}

/// `busway_discovery_up`, `busway_discovery_nodes{namespace}` and
/// `busway_discovery_rejected_total{reason}` (CONTRACT section 6), on a node with
/// `[discovery]`. Every rejection reason is shown from the start, at 0.
fn encode_discovery(
    encoder: &mut DescriptorEncoder<'_>,
    d: &crate::discovery::NodeDiscovery,
) -> Result<(), std::fmt::Error> {
    let no_labels: [(&str, &str); 0] = [];
    {
        let mut family = encoder.encode_descriptor(
            "busway_discovery_up",
            "1 while the watch on etcd is live.",
            None,
            MetricType::Gauge,
        )?;
        series::gauge(&mut family, &no_labels, i64::from(d.up()))?;
    }
    {
        let mut family = encoder.encode_descriptor(
            "busway_discovery_nodes",
            "Nodes in the discovered view, this one included.",
            None,
            MetricType::Gauge,
        )?;
        for (ns, n) in d.nodes_by_namespace() {
            series::gauge(&mut family, &[("namespace", ns.as_str())], n as i64)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "busway_discovery_rejected",
        "Records in etcd that were ignored: parse (not a node record), key (key and record disagree), address (a bus or gateway URL that is not tcp:// or unix://).",
        None,
        MetricType::Counter,
    )?;
    let rejected = d.rejected();
    for reason in busway_discovery::Rejected::REASONS {
        let n = rejected
            .iter()
            .filter(|(r, _)| *r == reason)
            .map(|(_, n)| *n)
            .sum();
        series::counter(&mut family, &[("reason", reason)], n)?;
    }
    Ok(())
}
