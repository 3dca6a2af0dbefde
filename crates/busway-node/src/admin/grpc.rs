//! The gateway routes of the admin API (CONTRACT section 8): upstreams, downstreams, send and
//! broadcast, and the PersistentParadoxPlex `POST /upstream/add` kept for existing scripts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use busway_config::Address;
use busway_grpc::{AddError, Broadcast, Gateway, Undelivered};
use serde::Deserialize;

use super::body::Payload;
use super::paging::{self, Page};
use super::reply::{self, Params, Refused};
use crate::node::Node;

/// The gateway routes; the service name is checked by each handler ([`gateway_of`]).
pub(super) fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route(
            "/v1/services/{name}/upstreams",
            get(list_upstreams).post(add_upstream),
        )
        .route(
            "/v1/services/{name}/upstreams/{id}",
            delete(remove_upstream),
        )
        .route("/v1/services/{name}/downstreams", get(list_downstreams))
        .route("/v1/services/{name}/downstreams/{uuid}", delete(kick))
        .route("/v1/services/{name}/downstreams/{uuid}/send", post(send))
        .route("/v1/services/{name}/broadcast", post(broadcast))
        .route("/upstream/add", post(legacy_add))
}

/// The gateway of service `name`, or the 404 that says why there is none.
pub(super) fn gateway_of(node: &Node, name: &str) -> Result<Arc<Gateway>, Refused> {
    let Some(svc) = node.service(name) else {
        return Err(Refused::new(
            StatusCode::NOT_FOUND,
            format!("no service {name}"),
        ));
    };
    svc.gateway().ok_or_else(|| {
        Refused::new(
            StatusCode::NOT_FOUND,
            format!("service {name} is not a gRPC gateway"),
        )
    })
}

type Answer = Result<Response, Refused>;

async fn list_upstreams(State(node): State<Arc<Node>>, Params(name): Params<String>) -> Answer {
    Ok(reply::json(
        StatusCode::OK,
        &gateway_of(&node, &name)?.upstreams(),
    ))
}

async fn add_upstream(
    State(node): State<Arc<Node>>,
    Params(name): Params<String>,
    Payload(body): Payload,
) -> Answer {
    Ok(add(&gateway_of(&node, &name)?, &body))
}

async fn remove_upstream(
    State(node): State<Arc<Node>>,
    Params((name, id)): Params<(String, String)>,
) -> Answer {
    if gateway_of(&node, &name)?.remove_upstream(&id) {
        Ok(reply::no_content())
    } else {
        Err(Refused::new(
            StatusCode::NOT_FOUND,
            format!("no upstream {id}"),
        ))
    }
}

async fn list_downstreams(
    State(node): State<Arc<Node>>,
    Params(name): Params<String>,
    uri: Uri,
) -> Answer {
    let gw = gateway_of(&node, &name)?;
    let page = Page::from_query(uri.query())?;
    Ok(paging::answer(gw.downstreams(), page, |a, b| {
        (a.age_ms, &a.uuid).cmp(&(b.age_ms, &b.uuid))
    }))
}

async fn kick(
    State(node): State<Arc<Node>>,
    Params((name, uuid)): Params<(String, String)>,
) -> Answer {
    if gateway_of(&node, &name)?.kick(&uuid) {
        Ok(reply::no_content())
    } else {
        Err(no_downstream(&uuid))
    }
}

async fn send(
    State(node): State<Arc<Node>>,
    Params((name, uuid)): Params<(String, String)>,
    Payload(body): Payload,
) -> Answer {
    match gateway_of(&node, &name)?.send_to(&uuid, body) {
        Ok(()) => Ok(reply::no_content()),
        Err(Undelivered::Unknown) => Err(no_downstream(&uuid)),
        Err(Undelivered::Overflow) => Err(Refused::new(
            StatusCode::CONFLICT,
            format!("downstream {uuid} is not reading; its queue was full and it was closed"),
        )),
    }
}

fn no_downstream(uuid: &str) -> Refused {
    Refused::new(StatusCode::NOT_FOUND, format!("no downstream {uuid}"))
}

async fn broadcast(
    State(node): State<Arc<Node>>,
    Params(name): Params<String>,
    uri: Uri,
    Payload(body): Payload,
) -> Answer {
    let gw = gateway_of(&node, &name)?;
    let target = super::query_param(uri.query().unwrap_or(""), "target").unwrap_or("all");
    let Some(which) = Broadcast::parse(target) else {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            format!("invalid target \"{target}\", expected all, active or inactive"),
        ));
    };
    let delivered = gw.broadcast(which, body);
    Ok(reply::json(
        StatusCode::OK,
        &serde_json::json!({ "delivered": delivered }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    address: String,
}

fn add(gw: &Arc<Gateway>, body: &[u8]) -> Response {
    let b: AddBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"address\": \"grpc://HOST:PORT\"}}: {e}"),
            )
        }
    };
    match b.address.parse::<Address>() {
        Ok(a) => added(gw.add_upstream(a)),
        Err(e) => reply::error(
            StatusCode::BAD_REQUEST,
            format!("invalid address \"{}\": {e}", b.address),
        ),
    }
}

fn added(r: Result<String, AddError>) -> Response {
    match r {
        Ok(id) => reply::json(StatusCode::CREATED, &serde_json::json!({ "id": id })),
        Err(e @ AddError::NotGrpc) => reply::error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ AddError::Exists(_)) => reply::error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// PersistentParadoxPlex's `POST /upstream/add`.
#[derive(Deserialize)]
struct LegacyAdd {
    host: String,
    port: u16,
    /// Seconds; accepted for compatibility. The service's `live_timeout` and `ready_timeout`
    /// apply to every upstream, so these are only checked, not kept.
    #[serde(default)]
    alive_timeout: Option<f64>,
    #[serde(default)]
    ready_timeout: Option<f64>,
}

/// Adds an upstream to the first gRPC service, in service-name order.
async fn legacy_add(State(node): State<Arc<Node>>, Payload(body): Payload) -> Response {
    let b: LegacyAdd = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"host\", \"port\", \"alive_timeout\", \"ready_timeout\"}}: {e}"
                ),
            )
        }
    };
    let bad = |t: Option<f64>| t.is_some_and(|t| !(t.is_finite() && t > 0.0));
    if bad(b.alive_timeout) || bad(b.ready_timeout) {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "timeouts must be positive numbers of seconds",
        );
    }
    let Some(gw) = node.services().iter().find_map(|s| s.gateway()) else {
        return reply::error(
            StatusCode::NOT_FOUND,
            "this node has no gRPC gateway service",
        );
    };
    let host = b.host.trim_matches(|c| c == '[' || c == ']').to_string();
    let url = if host.contains(':') {
        format!("grpc://[{host}]:{}", b.port)
    } else {
        format!("grpc://{host}:{}", b.port)
    };
    match url.parse::<Address>() {
        Ok(a) => added(gw.add_upstream(a)),
        Err(e) => reply::error(
            StatusCode::BAD_REQUEST,
            format!("invalid host \"{}\": {e}", b.host),
        ),
    }
}
