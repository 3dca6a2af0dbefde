//! One downstream: a client tagged with a UUID v4, its assigned upstream, and the bounded queue of
//! bytes on their way to it.
//!
//! [`DownShared`] is what the gateway's registry, the reply router and the admin API see;
//! [`Downstream`] is the handle the node's session task owns, whose drop is the client leaving.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::Notify;

use crate::gateway::Gateway;
use crate::upstream::Upstream;

/// The most bytes queued for one client that does not read. A reply that would go past it closes
/// that client instead: one slow reader cannot stall the upstream's stream, which every other
/// downstream shares, and cannot grow memory without bound.
pub const OUT_CAP: usize = 1024 * 1024;

#[derive(Debug, Default)]
struct OutQueue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
}

/// The upstream a downstream is assigned to. Once `detached`, it takes no assignment again: a
/// reassignment racing with the client leaving must not leave an upstream counting it.
#[derive(Debug, Default)]
struct Slot {
    up: Option<Arc<Upstream>>,
    detached: bool,
}

#[derive(Debug)]
pub(crate) struct DownShared {
    pub uuid: Arc<str>,
    pub client: String,
    assigned: Mutex<Slot>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Milliseconds since the gateway started, at the last byte either way.
    pub last_active_ms: AtomicU64,
    pub started_ms: u64,
    out: Mutex<OutQueue>,
    kicked: AtomicBool,
    /// A `CONNECTED` was queued for it: only then does an upstream hear it leave.
    pub announced: AtomicBool,
    /// Wakes the writer (a reply queued, or kicked).
    wake: Notify,
    /// Wakes whoever waits in [`Downstream::kicked`], even while the writer is blocked.
    kick: Notify,
}

/// `GET /v1/services/{name}/downstreams`.
#[derive(Debug, Serialize)]
pub struct DownstreamView {
    pub uuid: String,
    pub client: String,
    pub active: bool,
    /// The id of the upstream it is assigned to (empty while none is healthy).
    pub upstream: String,
    pub upstream_address: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub age_ms: u64,
}

/// Why a reply was not queued for a downstream.
#[derive(Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// No downstream has this uuid (it left, or never was).
    Unknown,
    /// Its queue is full: it was closed.
    Overflow,
}

impl DownShared {
    pub(crate) fn new(client: String, now_ms: u64) -> Self {
        DownShared {
            uuid: uuid::Uuid::new_v4().hyphenated().to_string().into(),
            client,
            assigned: Mutex::new(Slot::default()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(now_ms),
            started_ms: now_ms,
            out: Mutex::new(OutQueue::default()),
            kicked: AtomicBool::new(false),
            announced: AtomicBool::new(false),
            wake: Notify::new(),
            kick: Notify::new(),
        }
    }

    pub(crate) fn assigned(&self) -> Option<Arc<Upstream>> {
        self.slot().up.clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.assigned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves it to `to`, keeping each upstream's downstream count right. No-op once detached.
    pub(crate) fn set_assigned(&self, to: Option<Arc<Upstream>>) {
        let mut slot = self.slot();
        if slot.detached {
            return;
        }
        Self::swap(&mut slot, to);
    }

    /// The client left: unassign it for good; returns the upstream it had.
    pub(crate) fn detach(&self) -> Option<Arc<Upstream>> {
        let mut slot = self.slot();
        slot.detached = true;
        let had = slot.up.clone();
        Self::swap(&mut slot, None);
        had
    }

    fn swap(slot: &mut Slot, to: Option<Arc<Upstream>>) {
        if let Some(old) = slot.up.as_ref() {
            old.downstreams.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(new) = to.as_ref() {
            new.downstreams.fetch_add(1, Ordering::Relaxed);
        }
        slot.up = to;
    }

    /// Queues a reply; a queue already past [`OUT_CAP`] closes the downstream instead.
    pub(crate) fn push(&self, b: Bytes, now_ms: u64) -> Result<(), Undelivered> {
        if self.kicked.load(Ordering::Acquire) {
            return Err(Undelivered::Unknown);
        }
        {
            let mut q = self.out.lock().unwrap_or_else(|e| e.into_inner());
            if q.bytes > 0 && q.bytes + b.len() > OUT_CAP {
                drop(q);
                self.kick();
                return Err(Undelivered::Overflow);
            }
            q.bytes += b.len();
            q.chunks.push_back(b);
        }
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    pub(crate) fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        self.wake.notify_one();
        self.kick.notify_waiters();
    }

    fn pop(&self) -> Option<Bytes> {
        let mut q = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let b = q.chunks.pop_front()?;
        q.bytes -= b.len();
        if q.chunks.is_empty() && q.chunks.capacity() > 8 {
            // A burst's buffer is not kept by a downstream that went quiet.
            q.chunks = VecDeque::new();
        }
        Some(b)
    }

    pub(crate) fn active(&self, now_ms: u64, window_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) < window_ms
    }

    pub(crate) fn view(&self, now_ms: u64, window_ms: u64) -> DownstreamView {
        let up = self.assigned();
        DownstreamView {
            uuid: self.uuid.to_string(),
            client: self.client.clone(),
            active: self.active(now_ms, window_ms),
            upstream: up.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
            upstream_address: up.map(|u| u.address.to_string()).unwrap_or_default(),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            age_ms: now_ms.saturating_sub(self.started_ms),
        }
    }
}

/// A client attached to a gateway. Dropping it detaches the client (and, with
/// `lifecycle_events`, tells an upstream it left).
#[derive(Debug)]
pub struct Downstream {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) shared: Arc<DownShared>,
}

impl Downstream {
    pub fn uuid(&self) -> &str {
        &self.shared.uuid
    }

    /// The address of the upstream it is assigned to now.
    pub fn upstream_address(&self) -> Option<String> {
        self.shared.assigned().map(|u| u.address.to_string())
    }

    /// Sends a chunk the client wrote to its upstream. Waits while the upstream's stream is full
    /// (flow control reaches the client through this wait) or while no upstream is healthy.
    /// Fails only when the downstream was kicked or the gateway shut down.
    pub async fn send(&self, payload: Bytes) -> Result<(), Closed> {
        self.gw.send_data(&self.shared, payload).await
    }

    /// The next chunk for the client; `None` once it was kicked (by the operator, by a full
    /// queue, or by the gateway shutting down).
    pub async fn recv(&self) -> Option<Bytes> {
        loop {
            let notified = self.shared.wake.notified();
            if let Some(b) = self.shared.pop() {
                self.shared
                    .bytes_out
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                return Some(b);
            }
            if self.shared.kicked.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    /// Resolves once the downstream is kicked: by the operator, by a full queue (its client
    /// does not read, so the writer may be stuck in a write), or by the gateway shutting down.
    pub async fn kicked(&self) {
        loop {
            let n = self.shared.kick.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.shared.kicked.load(Ordering::Acquire) {
                return;
            }
            n.await;
        }
    }

    /// A queued chunk, without waiting: what is left to flush when the client leaves.
    pub fn try_recv(&self) -> Option<Bytes> {
        self.shared.pop()
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.gw.detach(&self.shared);
    }
}

/// The downstream was kicked or its gateway shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("downstream closed")
    }
}

impl std::error::Error for Closed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_lowercase_hyphenated() {
        let d = DownShared::new("c".into(), 0);
        let u = &*d.uuid;
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4', "{u}");
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{u}");
        assert!(u
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(DownShared::new("c".into(), 0).uuid, d.uuid);
    }

    #[test]
    fn a_full_queue_closes_the_downstream() {
        let d = DownShared::new("c".into(), 0);
        let half = Bytes::from(vec![0u8; OUT_CAP / 2]);
        assert_eq!(d.push(half.clone(), 1), Ok(()));
        assert_eq!(d.push(half.clone(), 1), Ok(()));
        assert_eq!(
            d.push(Bytes::from_static(b"x"), 1),
            Err(Undelivered::Overflow)
        );
        assert!(d.kicked.load(Ordering::Acquire));
        // One oversized reply to an empty queue is still delivered.
        let e = DownShared::new("c".into(), 0);
        assert_eq!(e.push(Bytes::from(vec![0u8; OUT_CAP * 2]), 1), Ok(()));
    }

    #[test]
    fn a_detached_downstream_takes_no_assignment() {
        let up = Arc::new(Upstream::new(
            "u1".into(),
            "grpc://127.0.0.1:1".parse().unwrap(),
            true,
        ));
        let d = DownShared::new("c".into(), 0);
        d.set_assigned(Some(up.clone()));
        assert_eq!(up.downstreams.load(Ordering::Relaxed), 1);
        assert!(d.detach().is_some());
        // A reassignment that lost the race with the client leaving.
        d.set_assigned(Some(up.clone()));
        assert_eq!(up.downstreams.load(Ordering::Relaxed), 0);
        assert!(d.assigned().is_none());
    }

    #[test]
    fn activity_window() {
        let d = DownShared::new("c".into(), 1000);
        assert!(d.active(1500, 1000));
        assert!(!d.active(2000, 1000));
        d.push(Bytes::from_static(b"x"), 1900).unwrap();
        assert!(d.active(2000, 1000));
    }
}
