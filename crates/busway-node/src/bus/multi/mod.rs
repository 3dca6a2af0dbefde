//! Multi-link sessions in the node (CONTRACT section 6, "Several links"; docs/PROTOCOL.md, 9):
//! one session spread over every transport to its peer, so that it survives losing all of them
//! but one.
//!
//! The session's state is a [`busway_proto::MultiStream`] behind one lock, with the carrier
//! stream it has on each transport. A session reaches it through the same [`BusStream`] as a
//! plain stream (so the pump, fan-out and the gRPC gateway need nothing new), and each call
//! first *services* the session (`service.rs`): it takes what arrived on the carriers, hands
//! out pieces and acknowledgements, notices lost transports and joins new ones, registering
//! the session's waker on every carrier, so any frame for the session, or a transport's end,
//! wakes it. A session whose handle was dropped with bytes not yet acknowledged is serviced by
//! a task of its own until they are, for at most [`LINGER`].
//!
//! Locks are taken in one order: the session's, then a transport's. A transport's driver only
//! ever holds its own and wakes wakers after releasing it.
//!
//! [`BusStream`]: super::BusStream

mod registry;
mod service;

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use busway_proto::{MultiStream, OpenParams, ResetCode, StreamError, LINK_KEY_LEN};
use bytes::Bytes;

use super::pool::PeerPool;
use super::stream::StreamEnd;
use super::transport::Transport;

pub(crate) use registry::open;
pub use registry::Registry;

/// How long a session whose application is done waits for its last bytes to be acknowledged.
pub const LINGER: Duration = Duration::from_secs(10);

/// The most [`MultiSession::poll_capacity`] offers at once, as a plain stream does.
const MAX_OFFER: usize = 256 * 1024;

/// Carriers a session takes at once: one per transport, and no more transports than a pool
/// keeps (`connections_per_peer` is at most 64).
const MAX_CARRIERS: usize = 64;

/// Carriers a session takes in its life, lost ones included: a peer cannot make it keep a slot
/// per join without end.
const MAX_JOINS: usize = 1024;

/// A session's stream on one transport.
#[derive(Debug)]
pub(crate) struct Carrier {
    pub t: Arc<Transport>,
    pub id: u64,
}

/// How the opening end joins the transports of its pool that are not carriers yet.
#[derive(Debug)]
pub(crate) struct Joiner {
    pub pool: Weak<PeerPool>,
    pub params: OpenParams,
    pub key: [u8; LINK_KEY_LEN],
    /// The pool's [`PeerPool::version`] when its transports were last looked at: they are
    /// looked at again only once it changed.
    pub seen: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub ms: MultiStream,
    /// The carriers by [`busway_proto::LinkId`]; `None` once that transport is lost.
    pub links: Vec<Option<Carrier>>,
    /// Opener only.
    pub joiner: Option<Joiner>,
    /// The waker of the last service, to be woken when a carrier joins.
    pub waker: Option<Waker>,
    /// How the session ended, when not cleanly: the peer reset it, or its transports are gone.
    pub end: Option<StreamEnd>,
    /// Every byte both ways was acknowledged and the carriers are ended.
    pub done: bool,
    /// The application read the peer's fin.
    pub fin_read: bool,
}

/// One multi-link session, shared by its handle and the transports' open path.
#[derive(Debug)]
pub struct MultiSession {
    inner: Mutex<Inner>,
    /// Where the accepting end listed it, to be taken out when it ends.
    listed: Option<(Weak<Registry>, registry::Key)>,
}

impl MultiSession {
    pub(crate) fn new(
        ms: MultiStream,
        first: Carrier,
        joiner: Option<Joiner>,
        listed: Option<(Weak<Registry>, registry::Key)>,
    ) -> MultiSession {
        MultiSession {
            inner: Mutex::new(Inner {
                ms,
                links: vec![Some(first)],
                joiner,
                waker: None,
                end: None,
                done: false,
                fin_read: false,
            }),
            listed,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next bytes in order, at most `max`; `Ok(None)` at the peer's fin.
    pub fn poll_read(
        &self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, StreamEnd>> {
        let mut g = self.lock();
        // Bytes in order already: the carriers can wait for the next call that finds none.
        let wake = match g.ms.is_readable() {
            true => Vec::new(),
            false => service::service(&mut g, cx.waker()),
        };
        let r = match g.ms.read(max) {
            Ok(None) => {
                g.fin_read = true;
                Poll::Ready(Ok(None))
            }
            Ok(Some(b)) => Poll::Ready(Ok(Some(b))),
            Err(_) => match &g.end {
                Some(e) => Poll::Ready(Err(e.clone())),
                None => Poll::Pending,
            },
        };
        drop(g);
        wake.into_iter().for_each(Waker::wake);
        r
    }

    /// `n` bytes read earlier are written out: once a quarter of the window is, the peer hears.
    pub fn release(&self, n: usize) {
        self.with(|g| g.ms.release(n));
    }

    /// How many bytes may be written now; waits while the peer's window is full of bytes it
    /// has not acknowledged.
    pub fn poll_capacity(&self, cx: &mut Context<'_>) -> Poll<Result<usize, StreamEnd>> {
        let mut g = self.lock();
        // Room already: only a full window needs the acknowledgements on the carriers.
        let wake = match (g.ms.capacity(), &g.end) {
            (1.., None) => Vec::new(),
            _ => service::service(&mut g, cx.waker()),
        };
        let r = match (&g.end, g.ms.capacity()) {
            (Some(e), _) => Poll::Ready(Err(e.clone())),
            (None, 0) => Poll::Pending,
            (None, n) => Poll::Ready(Ok(n.min(MAX_OFFER))),
        };
        drop(g);
        wake.into_iter().for_each(Waker::wake);
        r
    }

    /// Capacity right now, without waiting (0 when none).
    pub fn capacity_now(&self) -> Result<usize, StreamEnd> {
        let g = self.lock();
        match &g.end {
            Some(e) => Err(e.clone()),
            None => Ok(g.ms.capacity().min(MAX_OFFER)),
        }
    }

    /// Writes the front of `data` as far as the window allows; returns how much.
    pub fn write_now(&self, data: &mut Bytes) -> Result<usize, StreamEnd> {
        self.with(|g| match &g.end {
            Some(e) => Err(e.clone()),
            None if g.ms.is_finished() => Err(StreamEnd::Closed(format!(
                "stream closed: {}",
                StreamError::Misuse("write after finish")
            ))),
            None => Ok(g.ms.write(data)),
        })
    }

    /// Half-closes: the peer reads the fin after every byte written before.
    pub fn finish(&self) -> Result<(), StreamEnd> {
        self.with(|g| match &g.end {
            Some(e) => Err(e.clone()),
            None => {
                g.ms.finish();
                Ok(())
            }
        })
    }

    /// Aborts the session on every transport.
    pub fn reset(&self, code: ResetCode, reason: &str) {
        let mut g = self.lock();
        service::abort(&mut g, code, reason);
    }

    /// Changes the session's state, then services it (with the waker of the last service)
    /// if that left something to send, so it goes out now.
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.lock();
        let r = f(&mut g);
        if !g.ms.wants_send() {
            return r;
        }
        let waker = g.waker.clone().unwrap_or_else(|| Waker::noop().clone());
        let wake = service::service(&mut g, &waker);
        drop(g);
        wake.into_iter().for_each(Waker::wake);
        r
    }

    /// The handle is gone. A session that ended both ways waits (in a task of its own, at
    /// most [`LINGER`]) until its last bytes are acknowledged; one that had not ended is
    /// aborted, as a plain stream is (`cancel`).
    pub(crate) fn handle_dropped(self: &Arc<Self>) {
        let mut g = self.lock();
        if g.done || g.end.is_some() {
            return;
        }
        if !(g.ms.is_finished() && g.fin_read) {
            service::abort(&mut g, ResetCode::Cancel, "stream closed");
            return;
        }
        drop(g);
        let s = self.clone();
        tokio::spawn(async move {
            let serviced = poll_fn(|cx| {
                let mut g = s.lock();
                let wake = service::service(&mut g, cx.waker());
                let over = g.done || g.end.is_some();
                drop(g);
                wake.into_iter().for_each(Waker::wake);
                if over {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            if tokio::time::timeout(LINGER, serviced).await.is_err() {
                let mut g = s.lock();
                service::abort(&mut g, ResetCode::Timeout, "unacknowledged bytes");
            }
        });
    }

    /// A carrier on another transport joined (accepting end).
    pub(crate) fn join(&self, c: Carrier) {
        let mut g = self.lock();
        let refusal = if g.done || g.end.is_some() {
            Some("session over")
        } else if g.links.iter().flatten().any(|l| Arc::ptr_eq(&l.t, &c.t)) {
            Some("the session has a carrier on this transport")
        } else if g.links.iter().flatten().count() >= MAX_CARRIERS || g.links.len() >= MAX_JOINS {
            Some("too many carriers")
        } else {
            None
        };
        if let Some(why) = refusal {
            drop(g);
            c.t.with(|tg| tg.conn.reset(c.id, ResetCode::Refused, why));
            return;
        }
        let link = g.links.len();
        g.links.push(Some(c));
        g.ms.add_link(link);
        let waker = g.waker.take();
        drop(g);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Services the session once without a task to wake (a session just accepted: its first
    /// acknowledgement goes out before its backend is connected).
    pub(crate) fn kick(&self) {
        let mut g = self.lock();
        let wake = service::service(&mut g, Waker::noop());
        drop(g);
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Drop for MultiSession {
    fn drop(&mut self) {
        if let Some((r, key)) = &self.listed {
            if let Some(r) = r.upgrade() {
                r.remove(key);
            }
        }
    }
}
