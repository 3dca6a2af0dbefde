//! The client-to-upstream direction: every chunk a downstream writes becomes one
//! `InputStreamRequest` on the call of its upstream (or of the next one, per chunk).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use busway_config::Distribute;
use bytes::Bytes;

use super::Gateway;
use crate::downstream::{Closed, DownShared};
use crate::pb::{DownstreamEvent, InputStreamRequest};
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
        let mut msg = InputStreamRequest {
            time: crate::time::now(),
            client_uuid: d.uuid.to_string(),
            payload,
            event: event as i32,
        };
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
                        // An upstream that takes over a downstream hears of it first.
                        if event == DownstreamEvent::Data && self.settings().grpc.lifecycle_events {
                            self.event_nowait(&u, d, DownstreamEvent::Connected);
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
            let n = msg.payload.len() as u64;
            match call.sender.send(msg).await {
                Ok(()) => {
                    call.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                    call.counters.enqueued_bytes.fetch_add(n, Ordering::Relaxed);
                    up.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
                    up.stats.bytes_in.fetch_add(n, Ordering::Relaxed);
                    return Ok(());
                }
                Err(back) => {
                    // The call is gone: nothing was lost, try the next healthy upstream.
                    msg = back.0;
                    if up.drop_call(&call) {
                        self.flag(&up, Flag::Stream, false);
                    } else {
                        // Already replaced by a newer call (or being torn down): look again.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// Queues an event without waiting (from places that cannot wait, such as a drop).
    pub(super) fn event_nowait(&self, up: &Arc<Upstream>, d: &DownShared, event: DownstreamEvent) {
        let Some(call) = up.call() else { return };
        let msg = InputStreamRequest {
            time: crate::time::now(),
            client_uuid: d.uuid.to_string(),
            payload: Bytes::new(),
            event: event as i32,
        };
        up.stats.msgs_in.fetch_add(1, Ordering::Relaxed);
        match call.sender.try_send(msg) {
            Ok(()) => {
                call.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(tokio::sync::mpsc::error::TrySendError::Full(msg)) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        if call.sender.send(msg).await.is_ok() {
                            call.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
            Err(_) => {}
        }
    }
}
