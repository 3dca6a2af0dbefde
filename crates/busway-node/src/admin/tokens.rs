//! `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/{id}` (CONTRACT section 10).
//!
//! The token string is in the 201 answer and nowhere else: the list leaves it out, and the log
//! line of an issue names the id only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;

use super::body::Payload;
use super::reply::{self, Params};
use crate::node::Node;
use crate::tokens::{IssueError, TokenView};

pub(super) fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/v1/tokens", get(list).post(issue))
        .route("/v1/tokens/{id}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    node: String,
    services: Vec<String>,
    ttl: String,
}

const EXPECTED: &str = r#"expected {"node": "NAME", "services": ["SERVICE", ...], "ttl": "1h"}"#;

async fn issue(State(node): State<Arc<Node>>, Payload(body): Payload) -> Response {
    let b: IssueBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("{EXPECTED}: {e}")),
    };
    let ttl = match busway_config::parse_duration(&b.ttl) {
        Ok(d) => d,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, format!("invalid ttl: {e}")),
    };
    match node.tokens.issue(&b.node, b.services, ttl) {
        Ok((token, string)) => {
            tracing::info!(id = %token.id, node = %token.node, services = ?token.services, "token issued");
            let view = TokenView::from(&token);
            reply::json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "id": view.id,
                    "token": string.expose(),
                    "node": view.node,
                    "services": view.services,
                    "expires_at": view.expires_at,
                }),
            )
        }
        Err(e @ IssueError::Invalid(_)) => reply::error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => reply::error(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn list(State(node): State<Arc<Node>>) -> Response {
    reply::json(StatusCode::OK, &node.tokens.list())
}

async fn revoke(State(node): State<Arc<Node>>, Params(id): Params<String>) -> Response {
    match node.tokens.revoke(&id) {
        Ok(true) => {
            tracing::info!(%id, "token revoked");
            reply::no_content()
        }
        Ok(false) => reply::error(
            StatusCode::NOT_FOUND,
            format!("no live token {}", busway_proto::clip(&id, 64)),
        ),
        Err(e) => reply::error(
            StatusCode::CONFLICT,
            format!("cannot save the revocation: {e}"),
        ),
    }
}
