//! The admin API (CONTRACT section 8): HTTP/1.1 with keep-alive, JSON bodies, served by hyper
//! with an axum router.
//!
//! Why hyper and axum rather than the few hundred hand-written lines this replaced: those served
//! one request per connection (a monitoring scrape or the status page paid a TCP handshake per
//! request), had no chunked bodies, and their token check read the raw path while the router
//! read a trimmed one, so `//v1/sessions` needed no token. hyper's HTTP/1.1 is fuzzed and widely
//! deployed, and it is in the build already (tonic uses it), as is axum.
//!
//! Every request passes one layer, [`guard`], before it is routed. Its steps, in order, each of
//! which may answer instead of the router:
//! 1. [`limits::refuse_head`]: 413 for a head over 16 KiB;
//! 2. [`path::canonicalise`]: the path is made canonical and the URI rewritten to it, or 400
//!    (`..`, `%2F`); nothing after this sees another spelling;
//! 3. [`auth::refuse`]: with `admin.token` set, 401 for `/v1…` and `/upstream…` without
//!    `Authorization: Bearer TOKEN`, before any body is read;
//! 4. [`body::refuse_declared`] and [`body::cap`]: 413 for a body over 1 MiB, declared or
//!    chunked.
//!
//! One layer with the steps in reading order, rather than a layer each: the order is the
//! security property (the token is checked on the canonical path), and a stack of `.layer()`
//! calls reads inside out. Then [`routes`] (with the gateway's in [`grpc`]) answers. Every error
//! is JSON `{"error": "…"}`; an unknown path, or a known one with another method, is 404.
//! [`server`] runs one connection, with the time limits of [`limits`] and [`stall`].

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
mod tokens;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
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
        // The guard wraps a router that has nothing but a fallback (the real router), so it runs
        // before any routing, on every request, and the real router routes on the URI it
        // rewrote. (A layer on the real router itself would run after routing.)
        let app = Router::new()
            .fallback_service(routes::router(node.clone()))
            .layer(from_fn_with_state(Guard { node, limits }, guard));
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

#[derive(Clone, Debug)]
struct Guard {
    node: Arc<Node>,
    limits: Limits,
}

/// The checks before routing (see the module docs); the first that refuses answers.
async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    if let Some(refused) = limits::refuse_head(&req, &g.limits)
        .or_else(|| path::canonicalise(&mut req))
        .or_else(|| auth::refuse(&g.node, &req))
        .or_else(|| body::refuse_declared(&req, &g.limits))
    {
        return refused;
    }
    next.run(body::cap(req, &g.limits)).await
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
