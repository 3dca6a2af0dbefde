//! The admin API: HTTP/1.1 with JSON bodies, one request per connection.
//!
//! A hand-written server is enough here: the API is small, requests are few, and every length is
//! capped before anything is allocated, which a general HTTP stack would need configuring for.

mod grpc;
mod http;
pub mod prom;
mod routes;

use std::sync::Arc;

use busway_net::Conn;

use crate::node::Node;

pub use http::{Request, Response};

/// Serves one admin connection.
pub async fn serve(node: Arc<Node>, conn: Conn) {
    let req = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        http::read_request(&conn),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(resp)) => {
            let _ = http::write_response(&conn, &resp).await;
            return;
        }
        Err(_) => return,
    };
    let resp = routes::handle(&node, &req).await;
    let _ = http::write_response(&conn, &resp).await;
}
