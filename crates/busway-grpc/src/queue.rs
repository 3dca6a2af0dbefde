//! The queue into one upstream's `bidirectionalStreaming` call, shared by every downstream of
//! that upstream.
//!
//! Two kinds of message go through it, in one FIFO so that a downstream's `CONNECTED` precedes
//! its data and its `DISCONNECTED` follows it:
//! - data (and the events sent from places that can wait) take one of [`QUEUE`] places and wait
//!   for one: that wait is how a slow upstream slows its clients down;
//! - lifecycle events sent from places that cannot wait (a client leaving, a downstream moved)
//!   take one of [`EVENT_QUEUE`] places of their own and never wait: when those are taken the
//!   event is refused, and the caller counts it. No task is ever spawned to wait for room, so a
//!   flood of arrivals and departures costs at most `EVENT_QUEUE` messages per upstream.
//!
//! Both bounds hold by construction: the channel itself has room for exactly `QUEUE +
//! EVENT_QUEUE` messages, and each kind is kept to its share before it reaches the channel.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::codegen::tokio_stream::Stream;

use crate::pb::InputStreamRequest;

/// Data messages queued for one upstream's call beyond what HTTP/2 flow control already holds.
/// Small: these are what is lost if the upstream dies, and a full queue is what slows clients.
pub const QUEUE: usize = 128;

/// Lifecycle events queued for one upstream's call that were sent without waiting. At about 100
/// bytes each this is 25 KiB per upstream; an event beyond it is dropped and counted in
/// `busway_grpc_events_dropped_total`.
pub const EVENT_QUEUE: usize = 256;

/// Counters of one call, shared by the senders and the stream that tonic pulls from, so that
/// what was lost when the call died can be told apart from what reached the wire.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    pub enqueued: AtomicU64,
    pub enqueued_bytes: AtomicU64,
    pub pulled: AtomicU64,
    pub pulled_bytes: AtomicU64,
    /// The `pulled` counts at the last `Empty` whose `LiveResult` came back: everything up to it
    /// was read by the upstream's HTTP/2 stack before that heartbeat was.
    pub confirmed: AtomicU64,
    pub confirmed_bytes: AtomicU64,
}

/// What the senders and the call's stream share.
#[derive(Debug)]
struct Shared {
    counters: Arc<CallCounters>,
    /// Places for data; closed when the call stops taking messages.
    room: Arc<Semaphore>,
    /// Events queued without waiting and not yet pulled.
    events: AtomicUsize,
    /// Set by [`CallHandle::close`]: the stream ends once what is queued has been pulled.
    closing: AtomicBool,
    /// The stream's waker, so that `close` can wake it while it waits for messages.
    waker: Mutex<Option<Waker>>,
}

/// Why an event was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// [`EVENT_QUEUE`] events are already waiting.
    Full,
    /// The call takes no more messages.
    Closed,
}

/// The way into a call. Cheap to clone; every clone is the same queue.
#[derive(Clone, Debug)]
pub(crate) struct CallHandle {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Queued {
    msg: InputStreamRequest,
    /// The data place it holds until tonic pulls it; `None` for an event that did not wait.
    _place: Option<OwnedSemaphorePermit>,
}

/// A new call's queue: the handle for senders and the request stream for tonic.
pub(crate) fn call_queue() -> (CallHandle, Outgoing) {
    let (tx, rx) = mpsc::channel(QUEUE + EVENT_QUEUE);
    let shared = Arc::new(Shared {
        counters: Arc::default(),
        room: Arc::new(Semaphore::new(QUEUE)),
        events: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
        waker: Mutex::new(None),
    });
    let out = Outgoing {
        rx,
        shared: shared.clone(),
        rx_closed: false,
    };
    (CallHandle { tx, shared }, out)
}

impl CallHandle {
    pub fn counters(&self) -> &Arc<CallCounters> {
        &self.shared.counters
    }

    /// Whether both are the same call.
    pub fn same(&self, other: &CallHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Queues a message, waiting for a place. Gives the message back if the call stops taking
    /// messages first (it ended, or it is being closed): it was not sent, so it can go elsewhere.
    pub async fn send(&self, msg: InputStreamRequest) -> Result<(), InputStreamRequest> {
        let Ok(place) = self.shared.room.clone().acquire_owned().await else {
            return Err(msg);
        };
        self.put(msg, Some(place)).map_err(|(m, _)| m)
    }

    /// Queues an event without waiting, within [`EVENT_QUEUE`].
    pub fn try_event(&self, msg: InputStreamRequest) -> Result<(), Refused> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        let reserved = self
            .shared
            .events
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < EVENT_QUEUE).then_some(n + 1)
            });
        if reserved.is_err() {
            return Err(Refused::Full);
        }
        self.put(msg, None).map_err(|(_, why)| {
            self.shared.events.fetch_sub(1, Ordering::AcqRel);
            why
        })
    }

    fn put(
        &self,
        msg: InputStreamRequest,
        place: Option<OwnedSemaphorePermit>,
    ) -> Result<(), (InputStreamRequest, Refused)> {
        let n = msg.payload.len() as u64;
        match self.tx.try_send(Queued { msg, _place: place }) {
            Ok(()) => {
                let c = &self.shared.counters;
                c.enqueued.fetch_add(1, Ordering::AcqRel);
                c.enqueued_bytes.fetch_add(n, Ordering::AcqRel);
                Ok(())
            }
            // Full cannot happen (each kind is kept to its share first); treat it as closed
            // rather than lose the message.
            Err(TrySendError::Full(q)) => Err((q.msg, Refused::Full)),
            Err(TrySendError::Closed(q)) => Err((q.msg, Refused::Closed)),
        }
    }

    /// Stops taking messages: waiting senders get theirs back now, and the call's request stream
    /// ends once what is already queued has been pulled.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Messages queued and not yet pulled by the call.
    #[cfg(test)]
    pub fn queued(&self) -> u64 {
        let c = &self.shared.counters;
        let pulled = c.pulled.load(Ordering::Acquire);
        c.enqueued.load(Ordering::Acquire).saturating_sub(pulled)
    }
}

impl Shared {
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.room.close();
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

/// The request stream of the call: the queue, counting what tonic takes from it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    rx_closed: bool,
}

impl Stream for Outgoing {
    type Item = InputStreamRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.rx_closed {
            {
                let mut w = self.shared.waker.lock().unwrap_or_else(|e| e.into_inner());
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
            }
            if self.shared.closing.load(Ordering::Acquire) {
                // From here a send is refused by the channel itself, so nothing can be queued
                // after the stream has ended; what is already in it is still handed over.
                self.rx.close();
                self.rx_closed = true;
            }
        }
        let p = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(q)) = p {
            let c = &self.shared.counters;
            c.pulled.fetch_add(1, Ordering::AcqRel);
            c.pulled_bytes
                .fetch_add(q.msg.payload.len() as u64, Ordering::AcqRel);
            if q._place.is_none() {
                self.shared.events.fetch_sub(1, Ordering::AcqRel);
            }
            return Poll::Ready(Some(q.msg));
        }
        p.map(|_| None)
    }
}

impl Drop for Outgoing {
    /// The call is gone: senders waiting for a place get their message back at once.
    fn drop(&mut self) {
        self.shared.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tonic::codegen::tokio_stream::StreamExt;

    fn msg(n: usize) -> InputStreamRequest {
        InputStreamRequest {
            payload: Bytes::from(vec![0u8; n]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn events_have_their_own_bounded_places_and_keep_the_order() {
        let (h, mut out) = call_queue();
        for _ in 0..QUEUE {
            h.send(msg(1)).await.unwrap();
        }
        // Data is full: a data sender waits...
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), h.send(msg(1)));
        assert!(waiting.await.is_err());
        // ...but events still fit, up to their own bound.
        for _ in 0..EVENT_QUEUE {
            h.try_event(msg(0)).unwrap();
        }
        assert_eq!(h.try_event(msg(0)), Err(Refused::Full));
        assert_eq!(h.queued(), (QUEUE + EVENT_QUEUE) as u64);
        // FIFO: the data first, then the events; pulling an event frees an event place.
        for _ in 0..QUEUE {
            assert_eq!(out.next().await.unwrap().payload.len(), 1);
        }
        assert_eq!(out.next().await.unwrap().payload.len(), 0);
        h.try_event(msg(0)).unwrap();
        assert_eq!(h.try_event(msg(0)), Err(Refused::Full));
    }

    #[tokio::test]
    async fn close_hands_over_what_is_queued_then_ends_and_refuses_the_rest() {
        let (h, mut out) = call_queue();
        h.send(msg(3)).await.unwrap();
        h.try_event(msg(0)).unwrap();
        h.close();
        assert!(h.send(msg(1)).await.is_err());
        assert_eq!(h.try_event(msg(0)), Err(Refused::Closed));
        assert_eq!(out.next().await.unwrap().payload.len(), 3);
        assert_eq!(out.next().await.unwrap().payload.len(), 0);
        assert!(out.next().await.is_none());
        assert_eq!(h.queued(), 0);
    }

    #[tokio::test]
    async fn a_sender_waiting_for_a_place_gets_its_message_back_when_the_call_ends() {
        let (h, out) = call_queue();
        for _ in 0..QUEUE {
            h.send(msg(1)).await.unwrap();
        }
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.send(msg(7)).await });
        tokio::task::yield_now().await;
        drop(out);
        let back = waiter.await.unwrap().unwrap_err();
        assert_eq!(back.payload.len(), 7);
    }

    #[tokio::test]
    async fn a_stream_waiting_for_messages_ends_when_closed() {
        let (h, mut out) = call_queue();
        let next = tokio::spawn(async move { out.next().await });
        tokio::task::yield_now().await;
        h.close();
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), next).await;
        assert!(r.unwrap().unwrap().is_none());
    }
}
