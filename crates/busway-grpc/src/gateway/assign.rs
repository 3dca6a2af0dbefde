//! Which upstream takes a downstream: picking a healthy one by `balance`, waiting for one,
//! attaching and detaching clients, and moving downstreams off an upstream that stopped being
//! healthy.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use busway_config::Balance;
use bytes::Bytes;

use super::{Gateway, NoUpstream};
use crate::downstream::{DownShared, Downstream};
use crate::pb::DownstreamEvent;
use crate::upstream::{Flag, Upstream};

impl Gateway {
    /// Sets a health flag of `up` and acts on a change of its health.
    pub(crate) fn flag(&self, up: &Arc<Upstream>, flag: Flag, on: bool) {
        match up.set(flag, on) {
            Some(true) => {
                up.set_error("");
                tracing::info!(service = %self.service, upstream = %up.label, "upstream healthy");
                self.health.send_modify(|g| *g += 1);
            }
            Some(false) => {
                tracing::warn!(service = %self.service, upstream = %up.label, why = %up.why_down(), "upstream unhealthy; moving its downstreams");
                self.move_off(up);
            }
            None => {}
        }
    }

    /// Reassigns every downstream of `up` to a healthy upstream (or to none until one is; its
    /// next message then waits for one).
    pub(super) fn move_off(&self, up: &Arc<Upstream>) {
        let affected: Vec<Arc<DownShared>> = self
            .down_list()
            .into_iter()
            .filter(|d| d.assigned().is_some_and(|a| Arc::ptr_eq(&a, up)))
            .collect();
        for d in affected {
            self.stats.reassignments.fetch_add(1, Ordering::Relaxed);
            let to = self.pick();
            // With none healthy, the CONNECTED goes with its next message instead.
            if to.is_some() && self.settings().grpc.lifecycle_events {
                self.event_nowait(to.as_ref(), &d, DownstreamEvent::Connected);
            }
            d.set_assigned(to);
        }
    }

    /// A healthy upstream by `balance`, if there is one.
    pub(crate) fn pick(&self) -> Option<Arc<Upstream>> {
        let ups = self.upstreams.read().unwrap_or_else(|e| e.into_inner());
        let healthy = || ups.iter().filter(|u| u.healthy());
        let n = healthy().count();
        if n == 0 {
            return None;
        }
        match self.settings().balance {
            Balance::RoundRobin => healthy().nth(self.rr.fetch_add(1, Ordering::Relaxed) % n),
            Balance::Random => healthy().nth(rand::random_range(0..n)),
            Balance::LeastSessions => {
                healthy().min_by_key(|u| u.downstreams.load(Ordering::Relaxed))
            }
        }
        .cloned()
    }

    /// Waits until an upstream is healthy (until `deadline`, if given).
    pub(super) async fn wait_pick(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<Arc<Upstream>> {
        let mut changes = self.health.subscribe();
        loop {
            if self.is_closed() {
                return None;
            }
            if let Some(u) = self.pick() {
                return Some(u);
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, changes.changed()).await.is_err() {
                        return None;
                    }
                }
                None => {
                    let _ = changes.changed().await;
                }
            }
        }
    }

    /// Takes a new client: waits up to `upstream_wait` for a healthy upstream, assigns it, and
    /// (with `lifecycle_events`) tells that upstream it arrived.
    pub async fn attach(self: &Arc<Self>, client: String) -> Result<Downstream, NoUpstream> {
        let s = self.settings();
        let deadline = tokio::time::Instant::now() + s.grpc.upstream_wait;
        let Some(up) = self.wait_pick(Some(deadline)).await else {
            self.stats.no_upstream.fetch_add(1, Ordering::Relaxed);
            return Err(NoUpstream(self.problem().unwrap_or_default()));
        };
        let d = Arc::new(DownShared::new(client, self.now_ms()));
        d.set_assigned(Some(up));
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(d.uuid.clone(), d.clone());
        let down = Downstream {
            gw: self.clone(),
            shared: d,
        };
        if s.grpc.lifecycle_events {
            // The event is queued before any of the client's bytes, on the same call.
            let _ = self
                .send_up(&down.shared, DownstreamEvent::Connected, Bytes::new())
                .await;
        }
        Ok(down)
    }

    /// The client left: unregister, and (with `lifecycle_events`) tell its upstream.
    pub(crate) fn detach(&self, d: &Arc<DownShared>) {
        self.downs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&d.uuid);
        let up = d.detach();
        let announced = d.announced.load(Ordering::Acquire);
        if self.settings().grpc.lifecycle_events && announced && !self.is_closed() {
            let up = up.filter(|u| u.healthy()).or_else(|| self.pick());
            self.event_nowait(up.as_ref(), d, DownstreamEvent::Disconnected);
        }
    }
}
