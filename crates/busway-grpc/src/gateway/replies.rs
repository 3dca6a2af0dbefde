//! The upstream-to-client direction: routing what upstreams send to one downstream or a
//! broadcast, and the admin API's `send`, `broadcast` and `kick`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::{Broadcast, Gateway};
use crate::downstream::{DownShared, Undelivered};
use crate::pb::output_stream_request::{Broadcast as PbBroadcast, Target};
use crate::pb::OutputStreamRequest;
use crate::upstream::Upstream;

impl Gateway {
    /// Routes one message an upstream sent.
    pub(crate) fn route(&self, up: &Upstream, msg: OutputStreamRequest) {
        up.stats.msgs_out.fetch_add(1, Ordering::Relaxed);
        up.stats
            .bytes_out
            .fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
        match msg.target {
            Some(Target::ClientUuid(u)) => {
                if self.send_to(&u, msg.payload) == Err(Undelivered::Unknown) {
                    tracing::debug!(service = %self.service, upstream = %up.label, uuid = %crate::text::cap(&u), "reply to an unknown uuid dropped");
                }
            }
            Some(Target::Broadcast(b)) => {
                let which = match PbBroadcast::try_from(b) {
                    Ok(PbBroadcast::All) => Broadcast::All,
                    Ok(PbBroadcast::Active) => Broadcast::Active,
                    Ok(PbBroadcast::NotActive) => Broadcast::Inactive,
                    Err(_) => {
                        tracing::debug!(service = %self.service, upstream = %up.label, value = b, "reply with an unknown broadcast value dropped");
                        self.stats.unknown_uuid.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                self.broadcast(which, msg.payload);
            }
            None => {
                self.stats.unknown_uuid.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues bytes for one downstream (a reply, or the admin API's `send`).
    pub fn send_to(&self, uuid: &str, payload: Bytes) -> Result<(), Undelivered> {
        let r = match self.down(uuid) {
            Some(d) => d.push(payload, self.now_ms()),
            None => Err(Undelivered::Unknown),
        };
        self.count_undelivered(&r);
        r
    }

    fn count_undelivered(&self, r: &Result<(), Undelivered>) {
        match r {
            Err(Undelivered::Unknown) => &self.stats.unknown_uuid,
            Err(Undelivered::Overflow) => &self.stats.overflow,
            Ok(()) => return,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Queues bytes for every downstream `which` selects; returns how many got them.
    pub fn broadcast(&self, which: Broadcast, payload: Bytes) -> usize {
        let now = self.now_ms();
        let window = self.settings().grpc.active_window.as_millis() as u64;
        let mut delivered = 0;
        for d in self.down_list() {
            let wanted = match which {
                Broadcast::All => true,
                Broadcast::Active => d.active(now, window),
                Broadcast::Inactive => !d.active(now, window),
            };
            if wanted {
                let r = d.push(payload.clone(), now);
                if r.is_ok() {
                    delivered += 1;
                } else if r == Err(Undelivered::Overflow) {
                    self.count_undelivered(&r);
                }
            }
        }
        delivered
    }

    /// Closes one downstream's client.
    pub fn kick(&self, uuid: &str) -> bool {
        self.down(uuid).map(|d| d.kick()).is_some()
    }

    fn down(&self, uuid: &str) -> Option<Arc<DownShared>> {
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uuid)
            .cloned()
    }
}
