//! The admin API (CONTRACT section 8): HTTP/1.1 with keep-alive, JSON bodies, served by hyper
//! with an axum router.
//!
//! Why hyper and axum rather than the few hundred hand-written lines this replaced: those served
//! one request per connection (a monitoring scrape or the status page paid a TCP handshake per
//! request), had no chunked bodies, and their token check read the raw path while the router
//! read a trimmed one, so `//v1/sessions` needed no token. hyper's HTTP/1.1 is fuzzed and widely
//! deployed, and it is in the build already (tonic uses it), as is axum.
//!
//! A request goes through four layers, outermost first, then the router:
//! 1. [`limits::head_cap`]: 413 for a head over 16 KiB;
//! 2. [`path::canonical`]: the path is made canonical and the URI rewritten to it, or 400
//!    (`..`, `%2F`); nothing after this sees another spelling;
//! 3. [`auth::require_token`]: with `admin.token` set, 401 for `/v1…` and `/upstream…`
//!    without `Authorization: Bearer TOKEN`, before any body is read;
//! 4. [`body::cap`]: 413 for a body over 1 MiB, declared or chunked;
//!
//! and [`routes`] (with the gateway's in [`grpc`]) answers. Every error is JSON
//! `{"error": "…"}`; an unknown path, or a known one with another method, is 404. [`server`]
//! runs one connection, with the time limits of [`limits`] and [`stall`].

mod auth;
mod body;
mod grpc;
mod limits;
mod page;
mod paging;
mod path;
pub mod prom;
mod reply;
mod routes;
mod server;
mod stall;

use std::sync::Arc;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use busway_net::Conn;

use crate::node::Node;

pub use limits::Limits;

/// A node's admin server: the router with its layers, built once and shared by every
/// connection.
#[derive(Clone, Debug)]
pub struct Admin {
    app: Router,
    limits: Limits,
}

impl Admin {
    pub fn new(node: Arc<Node>) -> Admin {
        Admin::with_limits(node, Limits::default())
    }

    pub fn with_limits(node: Arc<Node>, limits: Limits) -> Admin {
        // The layers wrap a router that has nothing but a fallback (the real router), so they
        // run before any routing, on every request, and the real router routes on the URI
        // they rewrote. (A layer on the real router itself would run after routing.)
        let app = Router::new()
            .fallback_service(routes::router(node.clone()))
            .layer(from_fn_with_state(limits, body::cap))
            .layer(from_fn_with_state(node, auth::require_token))
            .layer(from_fn(path::canonical))
            .layer(from_fn_with_state(limits, limits::head_cap));
        Admin { app, limits }
    }

    /// The whole application as a service, for answering requests in process.
    pub fn app(&self) -> Router {
        self.app.clone()
    }

    /// Serves one accepted connection until it closes.
    pub async fn serve(self, conn: Conn) {
        server::serve(self.app, self.limits, conn).await
    }
}

/// A query parameter's raw value (the admin API's parameters are plain words and numbers).
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
