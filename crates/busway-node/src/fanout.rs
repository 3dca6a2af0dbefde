//! One-to-N sessions (CONTRACT section 3, modes): the client's bytes go to every target.
//!
//! - **half duplex**: the first target that sends a byte wins the session; every other target is
//!   closed at that moment — its socket shut, its stream reset, its reader stopped — and none of
//!   its bytes reaches the client. A target that closes without sending never wins; when all
//!   have, the client gets EOF. `latch_timeout` closes a session nobody answered.
//! - **full duplex**: every target's bytes reach the client, each read chunk written whole, so
//!   replies never interleave inside a chunk; a target that fails leaves the others running.
//!
//! Flow control holds across the fan-out: the client is read only as far as *every* bus target
//! has credit, each chunk is written to every target before the next read, and replies are
//! written to the client with the client's own credit and released from their target only once
//! written — so the slowest target bounds the session, and fan-outs compose over several hops.
//! A write to one target is never cut short because another target changed state: each
//! target's write gives way only to that target's own end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use busway_config::Mode;
use busway_net::Conn;
use busway_proto::ResetCode;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::bus::BusStream;
use crate::mirror::Mirrors;
use crate::pump::{try_read_sock, Abort, End, MAX_CHUNK};
use crate::sessions::SessionEntry;

/// One target of a fan-out session, as connected.
pub enum Target {
    Sock(Conn),
    Bus(BusStream),
}

/// A target as the session holds it: shared with its reader task, with its own end flag.
struct Leg {
    io: Target,
    dead: AtomicBool,
    /// Wakes whatever waits on this leg (a write, a credit wait) when it is ended.
    ended: Notify,
}

impl Leg {
    fn end(&self) -> End<'_> {
        match &self.io {
            Target::Sock(c) => End::Sock(c),
            Target::Bus(s) => End::Bus(s),
        }
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Relaxed)
    }

    /// Closes the target now: the socket is shut both ways, the stream reset.
    fn kill(&self, why: &str) {
        if self.dead.swap(true, Relaxed) {
            return;
        }
        match &self.io {
            Target::Sock(c) => {
                let _ = c.shutdown_both();
            }
            Target::Bus(s) => s.reset(ResetCode::Cancel, why),
        }
        self.ended.notify_waiters();
    }

    /// Runs `f` unless this leg ends first; `None` if it ended.
    async fn unless_ended<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        let ended = self.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if self.is_dead() {
            return None;
        }
        tokio::select! {
            biased;
            r = f => Some(r),
            _ = ended => None,
        }
    }
}

/// What a target's reader task reports.
enum Msg {
    Data(usize, Bytes),
    Eof(usize),
    Failed(usize, Abort),
}

/// Replies queued per session before target readers wait.
const REPLY_QUEUE: usize = 8;

/// Reads one target until it ends, handing each chunk to the session. A bus target's bytes are
/// released by the session once written to the client, not here.
async fn read_target(i: usize, leg: Arc<Leg>, tx: mpsc::Sender<Msg>) {
    let mut bulk = false;
    loop {
        let r = match &leg.io {
            Target::Sock(c) => match c.readable().await {
                Ok(()) => match try_read_sock(c, MAX_CHUNK, &mut bulk) {
                    Ok(Some(b)) if b.is_empty() => continue,
                    Ok(r) => Ok(r),
                    Err(e) => Err(Abort::Io(e)),
                },
                Err(e) => Err(Abort::Io(e)),
            },
            Target::Bus(s) => s.read(MAX_CHUNK).await.map_err(Abort::from),
        };
        let msg = match r {
            Ok(Some(b)) => Msg::Data(i, b),
            Ok(None) => Msg::Eof(i),
            Err(e) => Msg::Failed(i, e),
        };
        let last = !matches!(msg, Msg::Data(..));
        if tx.send(msg).await.is_err() || last {
            return;
        }
    }
}

/// Every target, and the rules that close them.
struct Fan {
    legs: Vec<Arc<Leg>>,
    readers: Vec<JoinHandle<()>>,
}

impl Fan {
    /// Closes target `i` and stops its reader.
    fn kill(&self, i: usize, why: &str) {
        self.legs[i].kill(why);
        self.readers[i].abort();
    }

    fn live(&self) -> impl Iterator<Item = &Arc<Leg>> {
        self.legs.iter().filter(|l| !l.is_dead())
    }

    /// What every live bus target can take now: the client is read only that far. Waits while
    /// any of them has no credit; a target that ends stops counting.
    async fn capacity(&self) -> usize {
        let mut budget = MAX_CHUNK;
        for leg in self.live() {
            if let Target::Bus(s) = &leg.io {
                match leg.unless_ended(s.capacity()).await {
                    Some(Ok(n)) => budget = budget.min(n),
                    Some(Err(_)) => leg.kill("stream closed"),
                    None => {}
                }
            }
        }
        budget
    }

    /// Writes one chunk of the client's to every live target, concurrently; a target whose
    /// write fails is closed, the others are not disturbed.
    async fn write(&self, b: &Bytes) {
        let writes = self.live().map(|leg| async move {
            let written = leg.unless_ended(leg.end().write_all(b.clone())).await;
            if let Some(Err(_)) = written {
                leg.kill("write failed");
            }
        });
        join_all(writes).await;
    }

    /// Passes the client's EOF to every live target.
    fn finish(&self) {
        for leg in self.live() {
            if leg.end().finish().is_err() {
                leg.kill("stream closed");
            }
        }
    }
}

impl Drop for Fan {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Runs a one-to-N session until the client and the targets are done.
pub async fn fan_out(
    client: End<'_>,
    targets: Vec<Target>,
    mode: Mode,
    entry: &SessionEntry,
    latch_timeout: Duration,
    mirrors: &Mirrors,
) -> Result<(), Abort> {
    let half = mode == Mode::HalfDuplex;
    let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
    let legs: Vec<Arc<Leg>> = targets
        .into_iter()
        .map(|io| {
            Arc::new(Leg {
                io,
                dead: AtomicBool::new(false),
                ended: Notify::new(),
            })
        })
        .collect();
    let readers = legs
        .iter()
        .enumerate()
        .map(|(i, leg)| tokio::spawn(read_target(i, leg.clone(), tx.clone())))
        .collect();
    drop(tx);
    let fan = Fan { legs, readers };
    // The index of the target that won the latch; NONE until one answers.
    const NONE: usize = usize::MAX;
    let winner = AtomicUsize::new(NONE);
    let won = || Some(winner.load(Relaxed)).filter(|&i| i != NONE);

    let up = async {
        let mut bulk = false;
        loop {
            let budget = fan.capacity().await;
            let chunk = match client {
                End::Sock(c) => {
                    c.readable().await.map_err(Abort::Io)?;
                    match try_read_sock(c, budget, &mut bulk).map_err(Abort::Io)? {
                        Some(b) if b.is_empty() => continue,
                        other => other,
                    }
                }
                End::Bus(s) => s.read(budget).await?,
            };
            match chunk {
                Some(b) => {
                    entry.add_in(b.len());
                    mirrors.offer(&b);
                    fan.write(&b).await;
                    client.release(b.len());
                }
                None => {
                    mirrors.finish();
                    fan.finish();
                    return Ok::<(), Abort>(());
                }
            }
        }
    };

    let down = async {
        let mut left = fan.legs.len();
        while left > 0 {
            let Some(msg) = rx.recv().await else { break };
            match msg {
                Msg::Data(i, b) => {
                    if half {
                        match won() {
                            None => {
                                winner.store(i, Relaxed);
                                // Latched: everyone else is closed now, and nothing of theirs
                                // already queued can reach the client.
                                for j in (0..fan.legs.len()).filter(|&j| j != i) {
                                    fan.kill(j, "lost the latch");
                                }
                                left = 1;
                                entry.set_state("latched");
                            }
                            Some(w) if w != i => continue,
                            Some(_) => {}
                        }
                    } else if fan.legs[i].is_dead() {
                        continue;
                    }
                    let n = b.len();
                    entry.add_out(n);
                    client.write_all(b).await?;
                    fan.legs[i].end().release(n);
                }
                Msg::Eof(i) | Msg::Failed(i, _) if half && won().is_some_and(|w| w != i) => {}
                Msg::Eof(i) => {
                    left -= 1;
                    if half && won().is_none() {
                        // Closed without sending: it can never win.
                        fan.kill(i, "closed without answering");
                    }
                }
                Msg::Failed(i, e) => {
                    left -= 1;
                    tracing::warn!(session = %entry.id, target = i, reason = %e, "fan-out target dropped");
                    fan.kill(i, "failed");
                    if half && won() == Some(i) {
                        return Err(e);
                    }
                }
            }
        }
        // Every target is done: the client reads EOF.
        client.finish()
    };

    let latch = async {
        if !half || latch_timeout.is_zero() {
            return std::future::pending().await;
        }
        tokio::time::sleep(latch_timeout).await;
        if won().is_none() {
            return;
        }
        std::future::pending().await
    };

    tokio::select! {
        r = async { tokio::try_join!(up, down).map(|_| ()) } => r,
        _ = entry.kill.notified() => Err(Abort::Kicked),
        _ = latch => Err(Abort::LatchTimeout),
    }
}

/// Runs every future to completion, concurrently, keeping their order.
pub(crate) async fn join_all<F: std::future::Future>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
