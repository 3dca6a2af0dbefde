//! A client of a gRPC gateway service, accepted on its listener or arriving over the bus: it
//! becomes a downstream of the service's [`Gateway`], and its bytes are moved between the socket
//! (or bus stream) and the gateway until either side ends.
//!
//! The client's EOF ends the downstream: the upstream protocol has no half-close, so what is
//! already queued for the client is written, its write side is shut, and the upstreams see it
//! leave (a `DISCONNECTED` event with `lifecycle_events`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_grpc::{Downstream, Gateway, NoUpstream};
use bytes::Bytes;

use crate::node::Node;
use crate::pump::{split, Abort, End, Writer};
use crate::sessions::SessionEntry;

/// The most a client read becomes in one message: small enough that one client's bulk transfer
/// interleaves with everyone else's on the shared call, large enough to keep per-message costs
/// low.
pub const CHUNK: usize = 16 * 1024;

/// Serves one client; returns the session's outcome label.
pub(crate) async fn serve(
    node: &Node,
    gw: &Arc<Gateway>,
    entry: &SessionEntry,
    started: Instant,
    idle_timeout: Duration,
    client: End<'_>,
) -> &'static str {
    let down = match gw.attach(entry.client.clone()).await {
        Ok(d) => d,
        Err(NoUpstream(why)) => {
            tracing::warn!(service = %entry.service, session = %entry.id, %why, "no upstream ready within upstream_wait; closing the client");
            return "refused";
        }
    };
    node.metrics.setup.observe(started.elapsed());
    entry.set_targets(vec![down.upstream_address().unwrap_or_default()]);
    entry.set_state("open");
    tracing::debug!(service = %entry.service, session = %entry.id, uuid = %down.uuid(), "downstream attached");
    match carry(client, &down, entry, idle_timeout).await {
        Ok(()) => "ok",
        Err(a) => {
            tracing::debug!(session = %entry.id, uuid = %down.uuid(), reason = %a, "downstream ended");
            a.outcome()
        }
    }
}

/// Moves bytes both ways until the client's EOF, an error, a kick or the idle timeout.
async fn carry(
    mut client: End<'_>,
    down: &Downstream,
    entry: &SessionEntry,
    idle_timeout: Duration,
) -> Result<(), Abort> {
    let (mut from, to) = split(&mut client);
    let reading = async {
        while let Some(b) = from.next(CHUNK).await? {
            let n = b.len();
            entry.add_in(n);
            down.send(b).await.map_err(|_| Abort::Kicked)?;
            from.delivered(n).await;
        }
        Ok(())
    };
    let writing = async {
        while let Some(b) = down.recv().await {
            entry.add_out(b.len());
            write_out(&to, b).await?;
        }
        Err(Abort::Kicked)
    };
    let idled = async {
        if idle_timeout.is_zero() {
            std::future::pending::<()>().await;
        }
        crate::pump::idle(entry, idle_timeout).await
    };
    let r = tokio::select! {
        r = reading => r,
        r = writing => r,
        _ = entry.kill.notified() => Err(Abort::Kicked),
        _ = down.kicked() => Err(Abort::Kicked),
        _ = idled => Err(Abort::Idle),
    };
    if r.is_ok() {
        while let Some(b) = down.try_recv() {
            entry.add_out(b.len());
            write_out(&to, b).await?;
        }
        to.finish(0).await?;
    }
    r
}

/// Writes a reply of any size, within the writer's budget (a bus stream's credit).
async fn write_out(to: &Writer<'_>, mut b: Bytes) -> Result<(), Abort> {
    while !b.is_empty() {
        let budget = to.budget().await?;
        let part = b.split_to(budget.min(b.len()));
        to.write(part.clone(), budget - part.len()).await?;
    }
    Ok(())
}
