//! A session's handle on one bus stream, split into the two directions a session pumps at once.
//!
//! Both halves and the driver share one small [`Shared`] per stream: the queue of what the peer
//! sent and the send credit, each with the waker of the half that waits on it. It replaces a
//! channel plus a semaphore per stream — tokio's channels allocate a block of slots up front,
//! which an idle session would pay for in memory, while an empty `VecDeque` costs nothing.
//!
//! Sending is bounded by credit: [`BusSend::reserve`] waits for the peer's window before the
//! session reads its socket, so a session never holds more than its window in flight and never
//! reads what it cannot send. Receiving is bounded by the window this node granted: the driver
//! queues at most that much, and [`BusRecv::consumed`] returns credit only once the bytes were
//! written to the socket — a slow reader stalls its own stream, no other.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use busway_proto::ResetCode;
use bytes::Bytes;
use tokio::sync::mpsc;

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

#[derive(Debug, Default)]
struct Inner {
    inbound: VecDeque<Inbound>,
    recv_waker: Option<Waker>,
    credit: usize,
    /// No more credit will come (reset or transport gone).
    closed: bool,
    send_waker: Option<Waker>,
}

/// The state one stream's driver slot and session halves share.
#[derive(Debug, Default)]
pub struct Shared(Mutex<Inner>);

impl Shared {
    pub(crate) fn new(credit: u32) -> Arc<Shared> {
        Arc::new(Shared(Mutex::new(Inner {
            credit: credit as usize,
            ..Inner::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Driver: queues something for the session.
    pub(crate) fn push(&self, item: Inbound) {
        let mut g = self.lock();
        g.inbound.push_back(item);
        if let Some(w) = g.recv_waker.take() {
            drop(g);
            w.wake();
        }
    }

    /// Driver: the peer granted more credit.
    pub(crate) fn add_credit(&self, n: usize) {
        let mut g = self.lock();
        g.credit = g.credit.saturating_add(n);
        if let Some(w) = g.send_waker.take() {
            drop(g);
            w.wake();
        }
    }

    /// Driver: the stream is over (reset or transport gone); `last` tells the session why.
    pub(crate) fn close(&self, last: Option<Inbound>) {
        let mut g = self.lock();
        g.closed = true;
        if let Some(item) = last {
            g.inbound.push_back(item);
        }
        let (r, s) = (g.recv_waker.take(), g.send_waker.take());
        drop(g);
        r.into_iter().chain(s).for_each(Waker::wake);
    }
}

/// Ties the halves to the transport; dropping the last half tells the driver the session is gone.
#[derive(Debug)]
struct Handle {
    id: u64,
    shared: Arc<Shared>,
    transport: Arc<TransportInfo>,
}

impl Handle {
    /// Sends a command to the driver: without waiting when the queue has room (the common case),
    /// else through a boxed wait, so the session's state machine does not carry the size of a
    /// channel send on every await.
    async fn cmd(&self, cmd: Cmd) -> Result<(), StreamGone> {
        match self.transport.cmd.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StreamGone),
            Err(mpsc::error::TrySendError::Full(cmd)) => Box::pin(self.transport.cmd.send(cmd))
                .await
                .map_err(|_| StreamGone),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.transport.streams.fetch_sub(1, Ordering::Relaxed);
        // A full queue only delays the clean-up: the driver also forgets every stream of a
        // transport when it closes.
        let _ = self.transport.cmd.try_send(Cmd::Close { id: self.id });
    }
}

/// The sending half.
#[derive(Debug)]
pub struct BusSend {
    handle: Arc<Handle>,
}

/// The receiving half.
#[derive(Debug)]
pub struct BusRecv {
    handle: Arc<Handle>,
}

/// Builds the two halves of a new stream (called by the driver).
pub(crate) fn new_stream(
    id: u64,
    transport: Arc<TransportInfo>,
    shared: Arc<Shared>,
) -> (BusSend, BusRecv) {
    transport.streams.fetch_add(1, Ordering::Relaxed);
    let handle = Arc::new(Handle {
        id,
        shared,
        transport,
    });
    (
        BusSend {
            handle: handle.clone(),
        },
        BusRecv { handle },
    )
}

/// The transport or the stream is gone.
#[derive(Debug)]
pub struct StreamGone;

impl BusSend {
    /// Waits for send credit and takes up to `max` bytes of it.
    pub async fn reserve(&self, max: usize) -> Result<usize, StreamGone> {
        let shared = &self.handle.shared;
        poll_fn(|cx| {
            let mut g = shared.lock();
            if g.closed {
                return Poll::Ready(Err(StreamGone));
            }
            if g.credit > 0 {
                let n = g.credit.min(max);
                g.credit -= n;
                return Poll::Ready(Ok(n));
            }
            g.send_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Gives back credit that was reserved but not used.
    pub fn unreserve(&self, n: usize) {
        if n > 0 {
            let mut g = self.handle.shared.lock();
            g.credit = g.credit.saturating_add(n);
        }
    }

    /// Sends bytes the caller reserved credit for; `fin` half-closes our side.
    pub async fn send(&self, data: Bytes, fin: bool) -> Result<(), StreamGone> {
        let id = self.handle.id;
        self.handle.cmd(Cmd::Data { id, data, fin }).await
    }

    /// Aborts the stream with a reason the other node logs.
    pub async fn reset(&self, code: ResetCode, reason: &str) {
        let id = self.handle.id;
        let reason = reason.to_string();
        let _ = self.handle.cmd(Cmd::Reset { id, code, reason }).await;
    }

    /// The transport this stream rides on.
    pub fn transport(&self) -> &Arc<TransportInfo> {
        &self.handle.transport
    }
}

impl BusRecv {
    /// The next thing the peer sent; `Closed` once the stream is over and drained.
    pub async fn recv(&mut self) -> Inbound {
        let shared = &self.handle.shared;
        poll_fn(|cx| {
            let mut g = shared.lock();
            if let Some(item) = g.inbound.pop_front() {
                return Poll::Ready(item);
            }
            if g.closed {
                return Poll::Ready(Inbound::Closed("stream closed".into()));
            }
            g.recv_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Reports `n` bytes delivered to the socket, so the driver can grant the peer more credit.
    pub async fn consumed(&self, n: usize) {
        let id = self.handle.id;
        let _ = self.handle.cmd(Cmd::Consume { id, n }).await;
    }
}
