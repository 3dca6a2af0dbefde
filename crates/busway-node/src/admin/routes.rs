//! The admin API's routes (CONTRACT section 8).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::http::{Request, Response};
use crate::metrics::Sample;
use crate::node::Node;

#[derive(Serialize)]
struct TargetView {
    address: String,
    state: &'static str,
    sessions: usize,
}

#[derive(Serialize)]
struct ServiceView {
    name: String,
    mode: &'static str,
    listeners: Vec<String>,
    targets: Vec<TargetView>,
}

pub async fn handle(node: &Arc<Node>, req: &Request) -> Response {
    // The legacy gateway route changes state, so it is guarded like the `/v1` API.
    if req.path.starts_with("/v1/") || req.path == "/v1" || req.path.starts_with("/upstream/") {
        if let Some(token) = node.admin_token() {
            let expected = format!("Bearer {}", token.expose());
            let given = req.header("authorization").unwrap_or("");
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                return Response::error(401, "missing or wrong bearer token");
            }
        }
    }
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["healthz"]) => Response::text(200, "ok"),
        ("GET", ["readyz"]) => {
            let problems = node.readiness_problems();
            if problems.is_empty() {
                Response::text(200, "ready")
            } else {
                Response::text(503, problems.join("\n") + "\n")
            }
        }
        ("GET", ["metrics"]) => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: metrics_text(node).into_bytes(),
        },
        ("GET", ["v1", "services"]) => Response::json(200, &services(node)),
        ("GET", ["v1", "sessions"]) => Response::json(200, &node.sessions.list()),
        ("DELETE", ["v1", "sessions", id]) => {
            if node.sessions.kill(id) {
                Response::empty(204)
            } else {
                Response::error(404, format!("no session {id}"))
            }
        }
        ("GET", ["v1", "peers"]) => {
            let peers: Vec<_> = node.transports.all().iter().map(|t| t.view()).collect();
            Response::json(200, &peers)
        }
        (_, ["v1", "services", name, ..]) if node.service(name).is_none() => {
            Response::error(404, format!("no service {name}"))
        }
        (_, ["v1", "services", name, "upstreams" | "downstreams" | "broadcast", ..]) => {
            match node.service(name).and_then(|s| s.gateway()) {
                Some(gw) => super::grpc::handle(&gw, req, &segments[3..]),
                None => Response::error(404, format!("service {name} is not a gRPC gateway")),
            }
        }
        ("POST", ["upstream", "add"]) => super::grpc::legacy_add(node, &req.body),
        ("POST", ["v1", "reload"]) => reload(node).await,
        (_, ["v1", "cluster"]) => Response::error(404, "this node has no [cluster] section"),
        _ => Response::error(404, format!("no route for {} {}", req.method, req.path)),
    }
}

/// `POST /v1/reload`: reads the node's file again and answers with the outcome once it is
/// applied or rejected: 200 `{"result":"ok"}`, else `{"error"}` with 400 for an invalid file
/// and 409 for a change the running node cannot make.
async fn reload(node: &Arc<Node>) -> Response {
    tracing::info!("reload requested through the admin API");
    match node.reload_from_source().await {
        Ok(()) => Response::json(200, &serde_json::json!({ "result": "ok" })),
        Err(e) => Response::error(e.status(), e.to_string()),
    }
}

fn metrics_text(node: &Node) -> String {
    let mut text = node.metrics.render(&peer_samples(node));
    let gateways: Vec<_> = node.services().iter().filter_map(|s| s.gateway()).collect();
    if !gateways.is_empty() {
        busway_grpc::metrics::render(&gateways, &mut text);
    }
    text
}

fn services(node: &Node) -> Vec<ServiceView> {
    node.services()
        .iter()
        .map(|svc| {
            let cfg = svc.config();
            let mut listeners: Vec<String> = svc
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|h| h.url.clone())
                .collect();
            listeners.sort();
            let targets = match svc.gateway() {
                Some(gw) => gw
                    .upstreams()
                    .into_iter()
                    .map(|u| TargetView {
                        address: u.address,
                        state: u.state,
                        sessions: u.downstreams,
                    })
                    .collect(),
                None => svc
                    .targets()
                    .endpoints()
                    .iter()
                    .map(|e| TargetView {
                        address: e.addr.to_string(),
                        state: if node.target_up(svc, e) { "up" } else { "down" },
                        sessions: e.sessions(),
                    })
                    .collect(),
            };
            ServiceView {
                name: svc.name.to_string(),
                mode: cfg.mode.as_str(),
                listeners,
                targets,
            }
        })
        .collect()
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
