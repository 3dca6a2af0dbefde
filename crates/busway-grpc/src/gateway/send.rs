//! The client-to-upstream direction: every chunk a downstream writes becomes one
//! `InputStreamRequest` on the call of its upstream (or of the next one, per chunk).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use busway_config::Distribute;
use bytes::Bytes;

use super::Gateway;
use crate::downstream::{Closed, DownShared};
use crate::pb::{DownstreamEvent, InputStreamRequest};
use crate::queue::{CallHandle, Refused};
use crate::upstream::{Flag, Upstream};

impl Gateway {
    /// Carries a chunk the client wrote.
    pub(crate) async fn send_data(&self, d: &DownShared, payload: Bytes) -> Result<(), Closed> {
        d.bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        d.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
        self.send_up(d, DownstreamEvent::Data, payload).await
    }

    /// Queues one message on the call of the upstream `d` is assigned to (per-client), or of the
    /// next healthy one (per-chunk), waiting for one to be healthy if none is.
    pub(super) async fn send_up(
        &self,
        d: &DownShared,
        event: DownstreamEvent,
        payload: Bytes,
    ) -> Result<(), Closed> {
        let per_chunk = self.settings().grpc.distribute == Distribute::PerChunk;
        let mut msg = message(d, event, payload);
        // An upstream that takes over a downstream hears of it first; this waits for room like
        // the data it precedes, so it is never dropped.
        let mut announce = None;
        loop {
            let up = match d.assigned() {
                Some(u) if u.healthy() && !(per_chunk && event == DownstreamEvent::Data) => u,
                current => {
                    let u = self.wait_pick(None).await.ok_or(Closed)?;
                    let new = !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &u));
                    if new && !per_chunk {
                        if current.is_some() {
                            self.stats.reassignments.fetch_add(1, Ordering::Relaxed);
                        }
                        if event == DownstreamEvent::Data && self.settings().grpc.lifecycle_events {
                            announce = Some(message(d, DownstreamEvent::Connected, Bytes::new()));
                        }
                    }
                    d.set_assigned(Some(u.clone()));
                    u
                }
            };
            let Some(call) = up.call() else {
                // Healthy a moment ago, its call is being torn down right now.
                tokio::task::yield_now().await;
                continue;
            };
            if let Some(a) = announce.take() {
                match call.send(a).await {
                    Ok(()) => {
                        count_in(&up, 0);
                        d.announced.store(true, Ordering::Release);
                    }
                    Err(back) => {
                        announce = Some(back);
                        self.call_gone(&up, &call).await;
                        continue;
                    }
                }
            }
            let n = msg.payload.len() as u64;
            match call.send(msg).await {
                Ok(()) => {
                    count_in(&up, n);
                    if event == DownstreamEvent::Connected {
                        d.announced.store(true, Ordering::Release);
                    }
                    return Ok(());
                }
                Err(back) => {
                    // The call is gone: nothing was lost, try the next healthy upstream.
                    msg = back;
                    self.call_gone(&up, &call).await;
                }
            }
        }
    }

    /// A send found `call` closed: unless a newer call already replaced it, `up` has no open
    /// call any more.
    async fn call_gone(&self, up: &Arc<Upstream>, call: &CallHandle) {
        if up.drop_call(call) {
            self.flag(up, Flag::Stream, false);
        } else {
            // Already replaced by a newer call (or being torn down): look again.
            tokio::task::yield_now().await;
        }
    }

    /// Queues an event without waiting, from places that cannot wait (a client leaving, a
    /// downstream moved). It takes one of the call's [`crate::EVENT_QUEUE`] places for such
    /// events; when they are all taken, when the call is closing, or when there is no upstream
    /// to tell, the event is dropped and counted: no task is spawned to wait for room.
    pub(super) fn event_nowait(
        &self,
        up: Option<&Arc<Upstream>>,
        d: &DownShared,
        event: DownstreamEvent,
    ) {
        let refused = match up.map(|u| (u, u.call())) {
            Some((u, Some(call))) => match call.try_event(message(d, event, Bytes::new())) {
                Ok(()) => {
                    count_in(u, 0);
                    if event == DownstreamEvent::Connected {
                        d.announced.store(true, Ordering::Release);
                    }
                    return;
                }
                Err(Refused::Full) => "its queue of events is full",
                Err(Refused::Closed) => "its call is closing",
            },
            Some((_, None)) => "it has no open call",
            None => "no upstream is healthy",
        };
        let n = self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        let upstream = up.map_or("", |u| u.label.as_str());
        // The first one is worth a warning; a flood of them is in the metric.
        if n == 0 {
            tracing::warn!(service = %self.service, upstream, uuid = %d.uuid, ?event, why = refused, "lifecycle event dropped (counted in busway_grpc_events_dropped_total)");
        } else {
            tracing::debug!(service = %self.service, upstream, uuid = %d.uuid, ?event, why = refused, "lifecycle event dropped");
        }
    }
}

fn message(d: &DownShared, event: DownstreamEvent, payload: Bytes) -> InputStreamRequest {
    InputStreamRequest {
        time: crate::time::now(),
        client_uuid: d.uuid.to_string(),
        payload,
        event: event as i32,
    }
}

/// Counts a message queued for `up`.
fn count_in(up: &Upstream, bytes: u64) {
    up.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
    up.stats.bytes_in.fetch_add(bytes, Ordering::Relaxed);
}
