//! What a connection a bus listener accepted goes through before its transport runs:
//! `max_transports`, then, under `[bus.tls]`, the TLS handshake, all within
//! `handshake_timeout` of the accept (CONTRACT section 10).
//!
//! A connection over the limit is closed at once, before a byte is read or written, so a flood
//! of connections costs the node one accept and one close each. The timeout covers TLS and the
//! bus handshake together: TLS gets what is left of it from the accept, the bus handshake what
//! is left after TLS, so a peer that trickles its TLS records cannot stretch the whole beyond
//! it.

use std::sync::Arc;
use std::time::Duration;

use busway_net::tls::{self, Binding};
use busway_net::Conn;
use tokio::time::Instant;

use super::pool::{Admitted, BusCtx};
use crate::metrics::Limit;

/// An accepted connection ready for the bus handshake.
pub(crate) enum Secured {
    Plain(Conn),
    Tls(Box<tls::ServerStream<Conn>>, Binding),
}

/// Counts `conn` against `max_transports`, or refuses it: it is dropped (closed) without a
/// byte, counted in `busway_limit_rejections_total{limit="max_transports"}`, and logged at
/// most once a second (as service `bus`: the limit is the node's, not a service's).
pub(crate) fn admit(ctx: &Arc<BusCtx>, conn: Conn, client: &str) -> Option<(Conn, Admitted)> {
    if let Some(a) = ctx.admit() {
        return Some((conn, a));
    }
    drop(conn);
    ctx.metrics
        .limit_refused(Limit::MaxTransports, "bus", "transport", Some(&client));
    None
}

/// Runs TLS on `conn` when the node has `[bus.tls]`. Returns the socket for the bus handshake
/// and the protocol settings to run it with (its timeout cut to what is left), or `None` when
/// the connection failed (counted and logged here).
pub(crate) async fn secure(
    ctx: &BusCtx,
    conn: Conn,
    client: &str,
    accepted: Instant,
) -> Option<(Secured, busway_proto::Config)> {
    let mut proto = ctx.proto();
    let deadline = accepted + proto.handshake_timeout;
    let secured = match ctx.tls() {
        None => Secured::Plain(conn),
        Some(t) => {
            let Some(acceptor) = t.acceptor.as_ref() else {
                // The configuration's validation requires `cert` on a node with bus listeners.
                tracing::error!(peer = %client, "bus connection closed: [bus.tls] has no cert to present");
                return None;
            };
            match tokio::time::timeout_at(deadline, tls::accept(acceptor, conn)).await {
                // Logged at most once a second per kind, as every end of a connection whose
                // peer proved nothing (metrics::HandshakeLog); the metrics count each.
                Err(_) => {
                    ctx.metrics.handshake_failures.inc("timeout");
                    if let Some(suppressed) = ctx.metrics.handshake_log.admit("timeout") {
                        tracing::info!(
                            peer = %client,
                            reason = "timeout",
                            timeout_ms = proto.handshake_timeout.as_millis() as u64,
                            suppressed,
                            "bus connection closed: no TLS handshake within handshake_timeout"
                        );
                    }
                    return None;
                }
                Ok(Err(f)) => {
                    if f.detected_here {
                        ctx.metrics.handshake_failures.inc("tls");
                        if let Some(suppressed) = ctx.metrics.handshake_log.admit(f.kind) {
                            tracing::warn!(peer = %client, reason = "tls", detail = %f.reason, suppressed, "bus connection closed: TLS handshake failed");
                        }
                    } else if let Some(suppressed) = ctx.metrics.handshake_log.admit(f.kind) {
                        tracing::info!(peer = %client, detail = %f.reason, suppressed, "bus connection closed during the TLS handshake");
                    }
                    return None;
                }
                Ok(Ok((s, binding))) => Secured::Tls(Box::new(s), binding),
            }
        }
    };
    proto.handshake_timeout = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    Some((secured, proto))
}
