//! A session's handle on one bus stream.
//!
//! Every call goes straight to the stream's state in the transport's connection, under its
//! lock: reading takes bytes the peer sent (they keep counting against the windows until
//! [`BusStream::release`], so a client that stops reading holds back only its own stream),
//! writing takes what the peer's credit allows, and dropping the handle stops the stream —
//! a reset for a stream that had not ended, nothing for one that had, and never lost,
//! because it is a state change, not a message.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use busway_proto::{ResetCode, StreamError};
use bytes::Bytes;

use super::multi::MultiSession;
use super::transport::{Inner, Transport};

/// How a stream ended, when it did not end with a fin.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// The other node reset it.
    Reset(ResetCode, String),
    /// The transport (or the stream) is gone.
    Closed(String),
}

/// One stream of a transport, owned by one session — or a multi-link session over several
/// transports ([`super::multi`]), which answers the same calls; `t` and `id` are then its
/// first carrier.
#[derive(Debug)]
pub struct BusStream {
    t: Arc<Transport>,
    id: u64,
    multi: Option<Arc<MultiSession>>,
}

impl BusStream {
    pub(crate) fn new(t: Arc<Transport>, id: u64) -> BusStream {
        t.streams.fetch_add(1, Ordering::Relaxed);
        BusStream { t, id, multi: None }
    }

    /// The handle of a multi-link session whose first carrier is `id` on `t`.
    pub(crate) fn multi(t: Arc<Transport>, id: u64, session: Arc<MultiSession>) -> BusStream {
        t.streams.fetch_add(1, Ordering::Relaxed);
        BusStream {
            t,
            id,
            multi: Some(session),
        }
    }

    /// The transport and stream id, the handle given up without stopping the stream (a carrier
    /// of a multi-link session is owned by its session instead).
    pub(crate) fn into_parts(mut self) -> (Arc<Transport>, u64) {
        // Id 0 is never a stream's (it names the transport): `Drop` then leaves the stream be.
        let id = std::mem::take(&mut self.id);
        (self.t.clone(), id)
    }

    /// Whether the session is spread over several transports.
    pub fn is_multi(&self) -> bool {
        self.multi.is_some()
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The transport this stream rides on.
    pub fn transport(&self) -> &Arc<Transport> {
        &self.t
    }

    /// The next bytes the peer sent, at most `max`; `Ok(None)` at its fin.
    pub fn poll_read(
        &self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, StreamEnd>> {
        if let Some(m) = &self.multi {
            return m.poll_read(cx, max);
        }
        let mut g = self.t.lock();
        match g.conn.read(self.id, max) {
            Ok(r) => Poll::Ready(Ok(r)),
            Err(StreamError::Blocked) => match &g.closed {
                Some(why) => Poll::Ready(Err(StreamEnd::Closed(why.to_string()))),
                None => {
                    g.wakers.entry(self.id).or_default().read = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
            Err(e) => Poll::Ready(Err(end(&g, e))),
        }
    }

    pub async fn read(&self, max: usize) -> Result<Option<Bytes>, StreamEnd> {
        poll_fn(|cx| self.poll_read(cx, max)).await
    }

    /// `n` bytes read earlier are written out: the peer may send that much more.
    pub fn release(&self, n: usize) {
        if let Some(m) = &self.multi {
            return m.release(n);
        }
        if n > 0 {
            self.t.with(|g| g.conn.release(self.id, n));
        }
    }

    /// How many bytes may be written now; waits while the peer's credit is used up or the
    /// transport's send backlog is full.
    pub fn poll_capacity(&self, cx: &mut Context<'_>) -> Poll<Result<usize, StreamEnd>> {
        if let Some(m) = &self.multi {
            return m.poll_capacity(cx);
        }
        let mut g = self.t.lock();
        if let Some(why) = &g.closed {
            return Poll::Ready(Err(StreamEnd::Closed(why.to_string())));
        }
        match g.conn.capacity(self.id) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(StreamError::Blocked) => {
                g.wakers.entry(self.id).or_default().write = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(end(&g, e))),
        }
    }

    pub async fn capacity(&self) -> Result<usize, StreamEnd> {
        poll_fn(|cx| self.poll_capacity(cx)).await
    }

    /// Capacity right now, without waiting (0 when blocked).
    pub fn capacity_now(&self) -> Result<usize, StreamEnd> {
        if let Some(m) = &self.multi {
            return m.capacity_now();
        }
        let mut g = self.t.lock();
        if let Some(why) = &g.closed {
            return Err(StreamEnd::Closed(why.to_string()));
        }
        match g.conn.capacity(self.id) {
            Ok(n) => Ok(n),
            Err(StreamError::Blocked) => Ok(0),
            Err(e) => Err(end(&g, e)),
        }
    }

    /// Writes the front of `data` as far as credit allows, without waiting; returns how much.
    /// A caller that asked [`BusStream::capacity`] first may write that much at once.
    pub fn write_now(&self, data: &mut Bytes) -> Result<usize, StreamEnd> {
        if let Some(m) = &self.multi {
            return m.write_now(data);
        }
        self.t.with(|g| {
            if let Some(why) = &g.closed {
                return Err(StreamEnd::Closed(why.to_string()));
            }
            match g.conn.write(self.id, data) {
                Ok(n) => Ok(n),
                Err(StreamError::Blocked) => Ok(0),
                Err(e) => Err(end(g, e)),
            }
        })
    }

    /// Writes all of `data`, waiting for credit as needed: the peer never gets more than it
    /// granted, however the bytes came (a fan-out's replies, a gateway's messages).
    pub async fn write_all(&self, mut data: Bytes) -> Result<(), StreamEnd> {
        poll_fn(|cx| self.poll_write_all(cx, &mut data)).await
    }

    /// Writes the front of `data` as credit allows until it is empty; `Pending` while credit
    /// or backlog room is lacking.
    pub fn poll_write_all(
        &self,
        cx: &mut Context<'_>,
        data: &mut Bytes,
    ) -> Poll<Result<(), StreamEnd>> {
        while !data.is_empty() {
            match self.poll_capacity(cx) {
                Poll::Ready(Ok(_)) => {
                    self.write_now(data)?;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Half-closes: the peer reads its fin after every byte written before.
    pub fn finish(&self) -> Result<(), StreamEnd> {
        if let Some(m) = &self.multi {
            return m.finish();
        }
        self.t.with(|g| {
            if let Some(why) = &g.closed {
                return Err(StreamEnd::Closed(why.to_string()));
            }
            g.conn.finish(self.id).map_err(|e| end(g, e))
        })
    }

    /// Aborts the stream both ways with a reason the other node logs.
    pub fn reset(&self, code: ResetCode, reason: &str) {
        if let Some(m) = &self.multi {
            return m.reset(code, reason);
        }
        self.t.with(|g| g.conn.reset(self.id, code, reason));
    }
}

impl Drop for BusStream {
    fn drop(&mut self) {
        self.t.streams.fetch_sub(1, Ordering::Relaxed);
        if let Some(m) = &self.multi {
            return m.handle_dropped();
        }
        let id = self.id;
        if id == 0 {
            return;
        }
        self.t.with(|g| {
            g.conn.stop(id);
            g.wakers.remove(&id);
        });
    }
}

/// The stream's end as a session sees it.
fn end(g: &Inner, e: StreamError) -> StreamEnd {
    match e {
        StreamError::Reset { code, reason } => StreamEnd::Reset(code, reason),
        _ => match &g.closed {
            Some(why) => StreamEnd::Closed(why.to_string()),
            None => StreamEnd::Closed(format!("stream closed: {e}")),
        },
    }
}
