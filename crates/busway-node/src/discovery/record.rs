//! The record this node publishes (CONTRACT section 6, "Registration"), from its configuration
//! and the bus URLs it actually bound.

use busway_config::{NodeConfig, Targets};
use busway_discovery::{AdvertiseRelay, Gateway, Host, NodeRecord};

/// This node as its record says it: the services it serves as egress (those with backends),
/// its `[[gateway]]`s and its `[relay]`.
pub(super) fn own(cfg: &NodeConfig, bus_urls: Vec<String>) -> NodeRecord {
    NodeRecord {
        name: cfg.node.name.clone(),
        namespace: cfg.node.namespace.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        labels: cfg.node.labels.clone(),
        annotations: cfg.node.annotations.clone(),
        host: Host::this_process(),
        bus: bus_urls,
        services: cfg
            .services
            .iter()
            .filter(|s| matches!(s.targets, Targets::Backends(_)))
            .map(|s| s.name.clone())
            .collect(),
        gateways: cfg
            .gateways
            .iter()
            .map(|g| Gateway {
                address: g.address.to_string(),
                priority: g.priority,
                r#match: g.r#match.clone(),
            })
            .collect(),
        relay: cfg.relay.enabled,
        advertise_relay: cfg.relay.advertise.as_ref().map(|a| AdvertiseRelay {
            labels: a.labels.clone(),
            name: a.name.clone(),
        }),
    }
}
