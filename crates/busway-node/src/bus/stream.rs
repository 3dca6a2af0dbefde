//! A session's handle on one bus stream, split into the two directions a session pumps at once.
//!
//! Sending is bounded by credit: [`BusSend::reserve`] waits for the peer's window before the
//! session reads its socket, so a session never holds more than its window in flight and never
//! reads what it cannot send. Receiving is bounded by the window this node granted: the driver
//! queues at most that much for the session, and [`BusRecv::consumed`] returns credit only once
//! the bytes were written to the socket — a slow reader stalls its own stream, no other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use busway_proto::ResetCode;
use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};

use super::driver::Cmd;
use super::info::TransportInfo;

/// What the driver hands a session.
#[derive(Debug)]
pub enum Inbound {
    Data(Bytes),
    /// The peer half-closed.
    Fin,
    /// The peer aborted the stream.
    Reset(ResetCode, String),
    /// The transport is gone.
    Closed(String),
}

/// State both halves share; dropping the last half tells the driver the session is gone.
#[derive(Debug)]
struct Shared {
    id: u64,
    cmd: mpsc::Sender<Cmd>,
    transport: Arc<TransportInfo>,
    reset_sent: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.transport.streams.fetch_sub(1, Ordering::Relaxed);
        // A full command queue only delays the reset: the driver also forgets streams whose
        // inbound receiver is gone when it next has something for them.
        let _ = self.cmd.try_send(Cmd::Close { id: self.id });
    }
}

/// The sending half.
#[derive(Debug)]
pub struct BusSend {
    shared: Arc<Shared>,
    credit: Arc<Semaphore>,
}

/// The receiving half.
#[derive(Debug)]
pub struct BusRecv {
    shared: Arc<Shared>,
    inbound: mpsc::UnboundedReceiver<Inbound>,
}

/// Builds the two halves of a new stream (called by the driver).
pub(crate) fn new_stream(
    id: u64,
    cmd: mpsc::Sender<Cmd>,
    transport: Arc<TransportInfo>,
    credit: Arc<Semaphore>,
    inbound: mpsc::UnboundedReceiver<Inbound>,
) -> (BusSend, BusRecv) {
    transport.streams.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        id,
        cmd,
        transport,
        reset_sent: AtomicBool::new(false),
    });
    (
        BusSend {
            shared: shared.clone(),
            credit,
        },
        BusRecv { shared, inbound },
    )
}

/// The transport or the stream is gone.
#[derive(Debug)]
pub struct StreamGone;

impl BusSend {
    /// Waits for send credit and takes up to `max` bytes of it.
    pub async fn reserve(&self, max: usize) -> Result<usize, StreamGone> {
        let first = self.credit.acquire().await.map_err(|_| StreamGone)?;
        first.forget();
        let more = self.credit.available_permits().min(max.saturating_sub(1));
        if more > 0 {
            if let Ok(p) = self.credit.try_acquire_many(more as u32) {
                p.forget();
                return Ok(more + 1);
            }
        }
        Ok(1)
    }

    /// Gives back credit that was reserved but not used.
    pub fn unreserve(&self, n: usize) {
        if n > 0 {
            self.credit.add_permits(n);
        }
    }

    /// Sends bytes the caller reserved credit for; `fin` half-closes our side.
    pub async fn send(&self, data: Bytes, fin: bool) -> Result<(), StreamGone> {
        let id = self.shared.id;
        self.shared
            .cmd
            .send(Cmd::Data { id, data, fin })
            .await
            .map_err(|_| StreamGone)
    }

    /// Aborts the stream with a reason the other node logs.
    pub async fn reset(&self, code: ResetCode, reason: &str) {
        if self.shared.reset_sent.swap(true, Ordering::Relaxed) {
            return;
        }
        let id = self.shared.id;
        let _ = self
            .shared
            .cmd
            .send(Cmd::Reset {
                id,
                code,
                reason: reason.to_string(),
            })
            .await;
    }

    /// The transport this stream rides on.
    pub fn transport(&self) -> &Arc<TransportInfo> {
        &self.shared.transport
    }
}

impl BusRecv {
    /// The next thing the peer sent; `None` once the driver is gone.
    pub async fn recv(&mut self) -> Option<Inbound> {
        self.inbound.recv().await
    }

    /// Reports `n` bytes delivered to the socket, so the driver can grant the peer more credit.
    pub async fn consumed(&self, n: usize) {
        let id = self.shared.id;
        let _ = self.shared.cmd.send(Cmd::Consume { id, n }).await;
    }
}
