//! The admin API's routes (CONTRACT section 8).

use serde::Serialize;

use super::http::{Request, Response};
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

pub async fn handle(node: &Node, req: &Request) -> Response {
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
            body: super::prom::metrics_text(node).into_bytes(),
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
        (_, ["v1", "cluster"]) => Response::error(404, "this node has no [cluster] section"),
        _ => Response::error(404, format!("no route for {} {}", req.method, req.path)),
    }
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
