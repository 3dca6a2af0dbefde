//! The body of `GET /metrics`: the node's one registry, in the Prometheus text format.
//!
//! The registry is built once per node. It holds the node's instruments ([`Metrics::register`]),
//! a collector for what lives in transports and target sets ([`NodeCollector`]) and the gRPC
//! gateway's collector, so a scrape registers nothing: it only encodes.
//!
//! The format is the Prometheus text format, version 0.0.4, through prometheus-client's own
//! encoder for it, not OpenMetrics: `promtool check metrics` reads only the former (it takes the
//! OpenMetrics counter families, named without `_total`, for untyped ones without help), and
//! Prometheus reads both.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use busway_metrics::prometheus_client::encoding::prometheus_text;
use busway_metrics::prometheus_client::registry::Registry;

use crate::metrics::live::NodeCollector;
use crate::metrics::Metrics;
use crate::node::Node;

/// The content type of [`metrics_text`]: `text/plain; version=0.0.4; charset=utf-8`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A node's registry, and the size of its last text so the next is allocated once.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
    last_len: AtomicUsize,
}

impl Exposition {
    /// The registry of the node `node` points to (it may not be built yet: it is read only
    /// when a scrape encodes).
    pub fn new(metrics: &Metrics, node: Weak<Node>) -> Self {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        registry.register_collector(Box::new(NodeCollector::new(node.clone())));
        registry.register_collector(Box::new(busway_grpc::metrics::Collector::new(move || {
            gateways(&node)
        })));
        Exposition {
            registry,
            last_len: AtomicUsize::new(0),
        }
    }

    /// The registry's text. A metric that fails to encode (none should) costs the families
    /// after it, not the whole scrape.
    pub fn text(&self) -> String {
        // A little room for a family that grew since the last scrape.
        let mut text = String::with_capacity(self.last_len.load(Ordering::Relaxed) * 9 / 8);
        if prometheus_text::encode(&mut text, &self.registry).is_err() {
            tracing::warn!("a metric failed to encode; /metrics lists what came before it");
            // The failed metric may have stopped in the middle of a line.
            text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        }
        self.last_len.store(text.len(), Ordering::Relaxed);
        text
    }
}

fn gateways(node: &Weak<Node>) -> Vec<Arc<busway_grpc::Gateway>> {
    node.upgrade()
        .map(|n| n.services().iter().filter_map(|s| s.gateway()).collect())
        .unwrap_or_default()
}

/// The `/metrics` body, in [`CONTENT_TYPE`].
pub fn metrics_text(node: &Node) -> String {
    node.exposition.text()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    /// Every family `/metrics` can show, as promtool sees it, with its type.
    const FAMILIES: [(&str, &str); 27] = [
        ("busway_sessions_active", "gauge"),
        ("busway_sessions_total", "counter"),
        ("busway_bytes_total", "counter"),
        ("busway_mirror_dropped_total", "counter"),
        ("busway_session_setup_seconds", "histogram"),
        ("busway_handshake_failures_total", "counter"),
        ("busway_frames_rejected_total", "counter"),
        ("busway_config_reloads_total", "counter"),
        ("busway_handshakes_total", "counter"),
        ("busway_limit_rejections_total", "counter"),
        ("busway_peer_transports", "gauge"),
        ("busway_peer_rtt_seconds", "gauge"),
        ("busway_peer_buffered_bytes", "gauge"),
        ("busway_dns_lookup_failures_total", "counter"),
        ("busway_upstream_ready", "gauge"),
        ("busway_upstream_downstreams", "gauge"),
        ("busway_upstream_messages_total", "counter"),
        ("busway_upstream_bytes_total", "counter"),
        ("busway_upstream_lost_messages_total", "counter"),
        ("busway_upstream_lost_bytes_total", "counter"),
        ("busway_upstream_failures_total", "counter"),
        ("busway_grpc_downstreams", "gauge"),
        ("busway_grpc_reassignments_total", "counter"),
        ("busway_grpc_unknown_uuid_total", "counter"),
        ("busway_grpc_overflow_total", "counter"),
        ("busway_grpc_no_upstream_total", "counter"),
        ("busway_grpc_events_dropped_total", "counter"),
    ];

    const SECRET: &str = "s3cret-for-unit-tests-only";

    async fn start(toml: &str) -> (Arc<Node>, Vec<crate::Listening>) {
        let cfg = busway_config::parse_toml(toml, "test.toml").expect("valid config");
        Node::start(cfg).await.expect("starts")
    }

    /// An egress serving `chat` and the gateway service `plex` (to upstreams that refuse), and
    /// an ingress carrying `chat` to it, once their transport is up.
    async fn two_nodes() -> (Arc<Node>, Arc<Node>) {
        let (egress, lines) = start(&format!(
            r#"
[node]
name = "egress"
[bus]
listen = ["tcp://127.0.0.1:0"]
secret = "{SECRET}"
[[service]]
name = "chat"
backends = ["tcp://127.0.0.1:1"]
[[service]]
name = "plex"
backends = ["grpc://127.0.0.1:1"]
"#
        ))
        .await;
        let bus = lines
            .iter()
            .find(|l| l.service == "bus")
            .map(|l| l.url.clone())
            .expect("a bus listener");
        let (ingress, _) = start(&format!(
            r#"
[node]
name = "ingress"
[bus]
secret = "{SECRET}"
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
peers = ["{bus}"]
"#
        ))
        .await;
        for _ in 0..500 {
            let up = |n: &Node| n.transports.all().iter().any(|t| t.state() == "up");
            if up(&ingress) && up(&egress) {
                return (ingress, egress);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the transport did not come up");
    }

    /// Checks the text family by family; returns each family's type.
    fn families(text: &str) -> HashMap<String, String> {
        let types: HashMap<&str, &str> = FAMILIES.into_iter().collect();
        let mut seen = HashMap::new();
        let mut help: Option<&str> = None;
        let mut current: Option<(&str, &str)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(!text.trim().is_empty(), "empty help: {line}");
                help = Some(name);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                assert_eq!(help.take(), Some(name), "no # HELP right before {line}");
                assert_eq!(types.get(name), Some(&kind), "unexpected family: {line}");
                let again = seen.insert(name.to_string(), kind.to_string());
                assert!(again.is_none(), "{name} declared twice");
                current = Some((name, kind));
            } else {
                let sample = line.split(['{', ' ']).next().unwrap_or(line);
                let (family, kind) = current.unwrap_or_else(|| panic!("sample first: {line}"));
                let suffix = sample.strip_prefix(family);
                let ok = match kind {
                    "histogram" => matches!(suffix, Some("_bucket" | "_sum" | "_count")),
                    _ => suffix == Some(""),
                };
                assert!(ok, "{sample} is not a sample of the {kind} {family}");
            }
        }
        seen
    }

    #[tokio::test]
    async fn every_family_has_help_and_the_right_type() {
        let (ingress, egress) = two_nodes().await;
        // Families of reasons appear with their first count; the limits are there from the start.
        let m = &egress.metrics;
        m.handshake_failures.inc("auth");
        m.frames_rejected.inc("checksum");
        m.config_reloads.inc("ok");
        let text = metrics_text(&egress);
        let seen = families(&text);
        for (name, _) in FAMILIES {
            assert!(seen.contains_key(name), "{name} missing from:\n{text}");
        }
        for line in [
            "busway_handshakes_total{kind=\"full\"} 1\n",
            "busway_peer_transports{peer=\"ingress\",state=\"up\"} 1\n",
            "busway_upstream_ready{service=\"plex\",upstream=\"grpc://127.0.0.1:1\"} 0\n",
            "busway_dns_lookup_failures_total{service=\"chat\"} 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let text = metrics_text(&ingress);
        families(&text);
        assert!(
            text.contains("busway_peer_transports{peer=\"egress\",state=\"up\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("busway_upstream"), "{text}");
    }

    #[test]
    fn a_node_that_is_gone_leaves_only_its_instruments() {
        let metrics = Metrics::default();
        metrics.service("chat");
        let text = Exposition::new(&metrics, Weak::new()).text();
        let seen = families(&text);
        assert!(seen.contains_key("busway_sessions_total"), "{text}");
        assert!(!seen.contains_key("busway_peer_transports"), "{text}");
    }
}
