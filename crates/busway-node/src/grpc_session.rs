//! A client of a gRPC gateway service, accepted on its listener or arriving over the bus: it
//! becomes a downstream of the service's [`Gateway`], and its bytes are moved between the socket
//! (or bus stream) and the gateway until either side ends.
//!
//! The client's EOF ends the downstream: the upstream protocol has no half-close, so what is
//! already queued for the client is written, its write side is shut, and the upstreams see it
//! leave (a `DISCONNECTED` event with `lifecycle_events`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use busway_grpc::{Downstream, Gateway, NoUpstream};
use tokio::sync::Notify;

use crate::node::Node;
use crate::pump::{Abort, End};
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
    entry.set_targets(vec![down.upstream_address().unwrap_or_default().into()]);
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
///
/// A reply is always written whole: the client's EOF does not interrupt a write in progress.
/// It tells the writer, which then writes what is still queued and shuts the client's write
/// side.
async fn carry(
    client: End<'_>,
    down: &Downstream,
    entry: &SessionEntry,
    idle_timeout: Duration,
) -> Result<(), Abort> {
    let eof = Notify::new();
    let at_eof = AtomicBool::new(false);
    let reading = async {
        let mut bulk = false;
        let r = async {
            while let Some(b) = client.next(CHUNK, &mut bulk).await? {
                let n = b.len();
                entry.add_in(n);
                down.send(b).await.map_err(|_| Abort::Kicked)?;
                client.release(n);
            }
            Ok(())
        }
        .await;
        at_eof.store(true, Ordering::Release);
        eof.notify_one();
        r
    };
    let writing = async {
        loop {
            let b = tokio::select! {
                b = down.recv() => match b {
                    Some(b) => b,
                    None => return Err(Abort::Kicked),
                },
                _ = client_eof(&eof, &at_eof) => {
                    while let Some(b) = down.try_recv() {
                        entry.add_out(b.len());
                        client.write_all(b).await?;
                    }
                    return client.finish();
                }
            };
            entry.add_out(b.len());
            client.write_all(b).await?;
        }
    };
    let idled = async {
        if idle_timeout.is_zero() {
            std::future::pending::<()>().await;
        }
        crate::pump::idle(entry, idle_timeout).await
    };
    tokio::select! {
        r = async { tokio::try_join!(reading, writing).map(|_| ()) } => r,
        _ = entry.kill.notified() => Err(Abort::Kicked),
        _ = down.kicked() => Err(Abort::Kicked),
        _ = idled => Err(Abort::Idle),
    }
}

/// Resolves once the client's EOF was read.
async fn client_eof(eof: &Notify, at_eof: &AtomicBool) {
    let n = eof.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    if !at_eof.load(Ordering::Acquire) {
        n.await;
    }
}
