//! The body of `GET /metrics`.

use std::collections::BTreeMap;

use crate::metrics::Sample;
use crate::node::Node;

pub fn metrics_text(node: &Node) -> String {
    let mut text = node.metrics.render(&peer_samples(node));
    let gateways: Vec<_> = node.services().iter().filter_map(|s| s.gateway()).collect();
    if !gateways.is_empty() {
        busway_grpc::metrics::render(&gateways, &mut text);
    }
    text
}

/// `busway_peer_transports{peer,state}`, `busway_peer_rtt_seconds{peer}` and
/// `busway_peer_buffered_bytes{peer,direction}` (what the transports to a peer hold in memory:
/// `in` for this node's sessions, `out` on its way to the peer), from the live transports, and
/// `busway_dns_lookup_failures_total{service}`. A peer is named by its node name once the handshake told us, else its address.
fn peer_samples(node: &Node) -> Vec<Sample> {
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut rtts: BTreeMap<String, f64> = BTreeMap::new();
    let mut held: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for t in node.transports.all() {
        let name = match t.node() {
            n if n.is_empty() => t.peer.clone(),
            n => n,
        };
        *counts.entry((name.clone(), t.state())).or_default() += 1;
        let (inb, outb) = t.buffered();
        *held.entry((name.clone(), "in")).or_default() += inb;
        *held.entry((name.clone(), "out")).or_default() += outb;
        if t.state() == "up" {
            rtts.insert(name, t.rtt().as_secs_f64());
        }
    }
    let mut out: Vec<Sample> = counts
        .into_iter()
        .map(|((peer, state), n)| Sample {
            name: "busway_peer_transports",
            labels: vec![("peer", peer), ("state", state.to_string())],
            value: n as f64,
        })
        .collect();
    out.extend(rtts.into_iter().map(|(peer, rtt)| Sample {
        name: "busway_peer_rtt_seconds",
        labels: vec![("peer", peer)],
        value: rtt,
    }));
    out.extend(held.into_iter().map(|((peer, direction), n)| Sample {
        name: "busway_peer_buffered_bytes",
        labels: vec![("peer", peer), ("direction", direction.to_string())],
        value: n as f64,
    }));
    out.extend(node.services().iter().map(|s| Sample {
        name: "busway_dns_lookup_failures_total",
        labels: vec![("service", s.name.to_string())],
        value: s.targets().lookup_failures() as f64,
    }));
    out
}
