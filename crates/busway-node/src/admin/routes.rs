//! The admin API's routes (CONTRACT section 8).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Serialize;

use super::paging::{self, Page};
use super::reply::{self, Params};
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

/// Every route; paths here are canonical ([`super::path`]) and already past the token check.
pub(super) fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/", get(super::page::index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/services", get(list_services))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", delete(kill_session))
        .route("/v1/peers", get(list_peers))
        .route("/v1/reload", post(reload))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/cluster", get(cluster))
        .merge(super::grpc::routes())
        .merge(super::tokens::routes())
        .fallback(not_found)
        // A known path with another method is 404 like an unknown one, as it always was: the
        // contract's errors have no 405.
        .method_not_allowed_fallback(not_found)
        .with_state(node)
}

/// `POST /v1/reload`: reads the node's file again and answers with the outcome once it is
/// applied or rejected: 200 `{"result":"ok"}`, else `{"error"}` with 400 for an invalid file
/// and 409 for a change the running node cannot make.
async fn reload(State(node): State<Arc<Node>>) -> Response {
    tracing::info!("reload requested through the admin API");
    match node.reload_from_source().await {
        Ok(()) => reply::json(StatusCode::OK, &serde_json::json!({ "result": "ok" })),
        Err(e) => reply::error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::CONFLICT),
            e.to_string(),
        ),
    }
}

async fn healthz() -> Response {
    reply::text(StatusCode::OK, "ok")
}

async fn readyz(State(node): State<Arc<Node>>) -> Response {
    let problems = node.readiness_problems();
    // etcd being away is said, but is a 503 only through what it leaves without targets.
    let note = node
        .discovery()
        .and_then(|d| d.readiness_note())
        .map(|n| n + "\n")
        .unwrap_or_default();
    if problems.is_empty() {
        let body = if note.is_empty() {
            "ready".to_string()
        } else {
            format!("ready\n{note}")
        };
        reply::text(StatusCode::OK, body)
    } else {
        reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            problems.join("\n") + "\n" + &note,
        )
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    reply::typed(
        StatusCode::OK,
        super::prom::CONTENT_TYPE,
        super::prom::metrics_text(&node),
    )
}

async fn list_services(State(node): State<Arc<Node>>) -> Response {
    reply::json(StatusCode::OK, &services(&node))
}

async fn list_sessions(State(node): State<Arc<Node>>, uri: Uri) -> Response {
    match Page::from_query(uri.query()) {
        Ok(page) => paging::answer(node.sessions.list(), page, |a, b| {
            (a.age_ms, &a.id).cmp(&(b.age_ms, &b.id))
        }),
        Err(bad) => bad.into_response(),
    }
}

async fn kill_session(State(node): State<Arc<Node>>, Params(id): Params<String>) -> Response {
    if node.sessions.kill(&id) {
        reply::no_content()
    } else {
        reply::error(StatusCode::NOT_FOUND, format!("no session {id}"))
    }
}

async fn list_peers(State(node): State<Arc<Node>>) -> Response {
    let peers: Vec<_> = node.transports.all().iter().map(|t| t.view()).collect();
    reply::json(StatusCode::OK, &peers)
}

/// `GET /v1/nodes`: the discovered nodes, this one included with `self: true`.
async fn list_nodes(State(node): State<Arc<Node>>) -> Response {
    match node.discovery() {
        Some(d) => reply::json(StatusCode::OK, &d.nodes()),
        None => reply::error(
            StatusCode::NOT_FOUND,
            "this node has no [discovery] section",
        ),
    }
}

/// `GET /v1/cluster` (CONTRACT section 7).
async fn cluster(State(node): State<Arc<Node>>) -> Response {
    match node.cluster() {
        Some(c) => reply::json(StatusCode::OK, &c.view()),
        None => reply::error(StatusCode::NOT_FOUND, "this node has no [cluster] section"),
    }
}

/// 404 for everything else, naming what is missing: an unknown service, a service that is
/// not a gateway for a gateway route, or just the route.
async fn not_found(State(node): State<Arc<Node>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["v1", "services", name, rest @ ..] = segments.as_slice() {
        let gateway_route = matches!(
            rest.first(),
            Some(&("upstreams" | "downstreams" | "broadcast"))
        );
        match super::grpc::gateway_of(&node, name) {
            Err(missing) if gateway_route || node.service(name).is_none() => {
                return missing.into_response()
            }
            _ => {}
        }
    }
    reply::error(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {path}"),
    )
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
