//! The gateway routes of the admin API (CONTRACT section 8): upstreams, downstreams, send and
//! broadcast, and the PersistentParadoxPlex `POST /upstream/add` kept for existing scripts.

use std::sync::Arc;

use busway_config::Address;
use busway_grpc::{AddError, Broadcast, Gateway, Undelivered};
use bytes::Bytes;
use serde::Deserialize;

use super::http::{Request, Response};
use crate::node::Node;

/// `/v1/services/{name}/…` for a gateway service; `rest` is what follows the name.
pub(super) fn handle(gw: &Arc<Gateway>, req: &Request, rest: &[&str]) -> Response {
    match (req.method.as_str(), rest) {
        ("GET", ["upstreams"]) => Response::json(200, &gw.upstreams()),
        ("POST", ["upstreams"]) => add(gw, &req.body),
        ("DELETE", ["upstreams", id]) => {
            if gw.remove_upstream(id) {
                Response::empty(204)
            } else {
                Response::error(404, format!("no upstream {id}"))
            }
        }
        ("GET", ["downstreams"]) => Response::json(200, &gw.downstreams()),
        ("DELETE", ["downstreams", uuid]) => {
            if gw.kick(uuid) {
                Response::empty(204)
            } else {
                Response::error(404, format!("no downstream {uuid}"))
            }
        }
        ("POST", ["downstreams", uuid, "send"]) => {
            match gw.send_to(uuid, Bytes::copy_from_slice(&req.body)) {
                Ok(()) => Response::empty(204),
                Err(Undelivered::Unknown) => Response::error(404, format!("no downstream {uuid}")),
                Err(Undelivered::Overflow) => Response::error(
                    409,
                    format!(
                        "downstream {uuid} is not reading; its queue was full and it was closed"
                    ),
                ),
            }
        }
        ("POST", ["broadcast"]) => {
            let target = query_param(&req.query, "target").unwrap_or("all");
            let Some(which) = Broadcast::parse(target) else {
                return Response::error(
                    400,
                    format!("invalid target \"{target}\", expected all, active or inactive"),
                );
            };
            let delivered = gw.broadcast(which, Bytes::copy_from_slice(&req.body));
            Response::json(200, &serde_json::json!({ "delivered": delivered }))
        }
        _ => Response::error(404, format!("no route for {} {}", req.method, req.path)),
    }
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
            return Response::error(
                400,
                format!("expected {{\"address\": \"grpc://HOST:PORT\"}}: {e}"),
            )
        }
    };
    match b.address.parse::<Address>() {
        Ok(a) => added(gw.add_upstream(a)),
        Err(e) => Response::error(400, format!("invalid address \"{}\": {e}", b.address)),
    }
}

fn added(r: Result<String, AddError>) -> Response {
    match r {
        Ok(id) => Response::json(201, &serde_json::json!({ "id": id })),
        Err(e @ AddError::NotGrpc) => Response::error(400, e.to_string()),
        Err(e @ AddError::Exists(_)) => Response::error(409, e.to_string()),
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
pub(super) fn legacy_add(node: &Node, body: &[u8]) -> Response {
    let b: LegacyAdd = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return Response::error(
                400,
                format!(
                    "expected {{\"host\", \"port\", \"alive_timeout\", \"ready_timeout\"}}: {e}"
                ),
            )
        }
    };
    let bad = |t: Option<f64>| t.is_some_and(|t| !(t.is_finite() && t > 0.0));
    if bad(b.alive_timeout) || bad(b.ready_timeout) {
        return Response::error(400, "timeouts must be positive numbers of seconds");
    }
    let Some(gw) = node.services().iter().find_map(|s| s.gateway()) else {
        return Response::error(404, "this node has no gRPC gateway service");
    };
    let host = b.host.trim_matches(|c| c == '[' || c == ']').to_string();
    let url = if host.contains(':') {
        format!("grpc://[{host}]:{}", b.port)
    } else {
        format!("grpc://{host}:{}", b.port)
    };
    match url.parse::<Address>() {
        Ok(a) => added(gw.add_upstream(a)),
        Err(e) => Response::error(400, format!("invalid host \"{}\": {e}", b.host)),
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
