//! One-to-N sessions (CONTRACT section 3, modes): the client's bytes go to every target.
//!
//! - **half duplex**: the first target that sends a byte wins the session; every other target is
//!   closed at once and none of its bytes reaches the client. A target that closes without
//!   sending never wins; when all have, the client gets EOF. `latch_timeout` closes a session
//!   nobody answered.
//! - **full duplex**: every target's bytes reach the client, each read chunk written whole, so
//!   replies never interleave inside a chunk; a target that fails leaves the others running.
//!
//! Flow control holds across the fan-out: the client is read only as far as *every* bus target
//! has credit, and each chunk is written to every target before the next read, so the slowest
//! target bounds the session and no target can make another lose bytes. A target that cannot
//! keep up therefore slows the client down rather than being dropped — the same choice TCP
//! makes for one receiver. Replies wait in a queue of a few chunks per session.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use busway_config::Mode;
use busway_net::Conn;
use busway_proto::ResetCode;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::bus::{BusRecv, BusSend};
use crate::mirror::Mirrors;
use crate::pump::{split, Abort, End, Reader, MAX_CHUNK};
use crate::sessions::SessionEntry;

/// One target of a fan-out session, as connected.
pub enum Target {
    Sock(Conn),
    Bus(BusSend, BusRecv),
}

/// The sending side of a target, kept by the session.
enum Out {
    Sock(Arc<Conn>),
    Bus(BusSend),
}

/// What a target's reader task reports.
enum Msg {
    Data(usize, Bytes),
    Eof(usize),
    Failed(usize, Abort),
}

/// Replies queued per session before target readers wait.
const REPLY_QUEUE: usize = 8;

/// Reads one target until it ends, handing each chunk to the session.
async fn read_target(i: usize, mut from: Reader<'_>, tx: mpsc::Sender<Msg>) {
    loop {
        match from.next(MAX_CHUNK).await {
            Ok(Some(b)) => {
                let n = b.len();
                if tx.send(Msg::Data(i, b)).await.is_err() {
                    return;
                }
                from.delivered(n).await;
            }
            Ok(None) => {
                let _ = tx.send(Msg::Eof(i)).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Msg::Failed(i, e)).await;
                return;
            }
        }
    }
}

fn spawn_reader(i: usize, target: Target, tx: mpsc::Sender<Msg>) -> (Out, JoinHandle<()>) {
    match target {
        Target::Sock(c) => {
            let c = Arc::new(c);
            let r = c.clone();
            let h = tokio::spawn(async move { read_target(i, Reader::Sock(&r, false), tx).await });
            (Out::Sock(c), h)
        }
        Target::Bus(send, mut recv) => {
            let h = tokio::spawn(async move { read_target(i, Reader::Bus(&mut recv), tx).await });
            (Out::Bus(send), h)
        }
    }
}

/// Closes a target that lost the latch or failed.
async fn close(out: Out, why: &str) {
    match out {
        Out::Sock(c) => {
            let _ = c.shutdown_both();
        }
        Out::Bus(s) => s.reset(ResetCode::Cancel, why).await,
    }
}

/// Targets the reply side has given up on (lost the latch, closed, failed). The client side owns
/// the targets' writers; it closes flagged ones, and `changed` wakes it from any wait on one.
struct Verdicts {
    dead: Vec<AtomicBool>,
    changed: Notify,
}

impl Verdicts {
    fn kill(&self, i: usize) {
        self.dead[i].store(true, Relaxed);
        self.changed.notify_waiters();
    }
}

/// The client-to-targets half: owns every target's writer.
struct Fan<'v> {
    outs: Vec<Option<Out>>,
    verdicts: &'v Verdicts,
}

impl Fan<'_> {
    /// Closes the targets the reply side gave up on.
    async fn reap(&mut self) {
        for (i, o) in self.outs.iter_mut().enumerate() {
            if self.verdicts.dead[i].load(Relaxed) {
                if let Some(out) = o.take() {
                    close(out, "dropped from the fan-out").await;
                }
            }
        }
    }

    /// Credit every bus target can take (a socket target takes a whole chunk): the client is
    /// read only as far as the slowest target allows. Each bus target keeps exactly the returned
    /// budget reserved.
    async fn reserve_all(&mut self) -> usize {
        'again: loop {
            self.reap().await;
            let mut budget = MAX_CHUNK;
            let mut taken: Vec<(usize, usize)> = Vec::new();
            for i in 0..self.outs.len() {
                let Some(Out::Bus(s)) = &self.outs[i] else {
                    continue;
                };
                let changed = self.verdicts.changed.notified();
                tokio::select! {
                    r = s.reserve(budget) => match r {
                        Ok(n) => {
                            budget = budget.min(n);
                            taken.push((i, n));
                        }
                        Err(_) => self.verdicts.dead[i].store(true, Relaxed),
                    },
                    _ = changed => {
                        self.unreserve(&taken, 0);
                        continue 'again;
                    }
                }
            }
            self.unreserve(&taken, budget);
            return budget;
        }
    }

    /// Gives back what each of `taken` reserved beyond `keep`.
    fn unreserve(&self, taken: &[(usize, usize)], keep: usize) {
        for &(i, n) in taken {
            if let Some(Out::Bus(s)) = &self.outs[i] {
                s.unreserve(n.saturating_sub(keep));
            }
        }
    }

    /// Writes one chunk of the client's to every target; `budget` is what each bus target holds.
    async fn write(&mut self, b: &Bytes, budget: usize) {
        for i in 0..self.outs.len() {
            let failed = match &self.outs[i] {
                Some(Out::Sock(c)) => {
                    let changed = self.verdicts.changed.notified();
                    tokio::select! {
                        r = c.write_all(b) => r.is_err(),
                        _ = changed => false,
                    }
                }
                Some(Out::Bus(s)) => {
                    s.unreserve(budget.saturating_sub(b.len()));
                    s.send(b.clone(), false).await.is_err()
                }
                None => false,
            };
            if failed {
                self.verdicts.dead[i].store(true, Relaxed);
            }
        }
        self.reap().await;
    }

    /// Passes the client's EOF to every target.
    async fn finish(&mut self, budget: usize) {
        self.reap().await;
        for o in self.outs.iter().flatten() {
            match o {
                Out::Sock(c) => {
                    let _ = c.shutdown_write();
                }
                Out::Bus(s) => {
                    s.unreserve(budget);
                    let _ = s.send(Bytes::new(), true).await;
                }
            }
        }
    }
}

/// Runs a one-to-N session until the client and the targets are done.
pub async fn fan_out(
    mut client: End<'_>,
    targets: Vec<Target>,
    mode: Mode,
    entry: &SessionEntry,
    latch_timeout: Duration,
    mirrors: &Mirrors,
) -> Result<(), Abort> {
    let half = mode == Mode::HalfDuplex;
    let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
    let mut outs = Vec::with_capacity(targets.len());
    let mut readers: Vec<JoinHandle<()>> = Vec::with_capacity(targets.len());
    for (i, t) in targets.into_iter().enumerate() {
        let (out, h) = spawn_reader(i, t, tx.clone());
        outs.push(Some(out));
        readers.push(h);
    }
    drop(tx);
    let verdicts = Verdicts {
        dead: (0..outs.len()).map(|_| AtomicBool::new(false)).collect(),
        changed: Notify::new(),
    };
    let mut fan = Fan {
        outs,
        verdicts: &verdicts,
    };
    // The index of the target that won the latch; NONE until one answers.
    const NONE: usize = usize::MAX;
    let winner = AtomicUsize::new(NONE);
    let won = |w: &AtomicUsize| Some(w.load(Relaxed)).filter(|&i| i != NONE);
    let (mut client_r, client_w) = split(&mut client);

    let up = async {
        loop {
            let budget = fan.reserve_all().await;
            match client_r.next(budget.max(1)).await? {
                Some(b) => {
                    entry.add_in(b.len());
                    mirrors.offer(&b);
                    fan.write(&b, budget).await;
                    client_r.delivered(b.len()).await;
                }
                None => {
                    mirrors.finish();
                    fan.finish(budget).await;
                    return Ok::<(), Abort>(());
                }
            }
        }
    };

    let down = async {
        let mut left = readers.len();
        while left > 0 {
            let Some(msg) = rx.recv().await else { break };
            match msg {
                Msg::Data(i, b) => {
                    if half {
                        match won(&winner) {
                            None => {
                                winner.store(i, Relaxed);
                                // Latched: everyone else is closed now, and nothing of theirs
                                // already queued can reach the client.
                                for (j, r) in readers.iter().enumerate() {
                                    if j != i {
                                        r.abort();
                                        verdicts.kill(j);
                                    }
                                }
                                left = 1;
                                entry.set_state("latched");
                            }
                            Some(w) if w != i => continue,
                            Some(_) => {}
                        }
                    }
                    entry.add_out(b.len());
                    client_w.write(b, 0).await?;
                }
                Msg::Eof(i) | Msg::Failed(i, _) if half && won(&winner).is_some_and(|w| w != i) => {
                }
                Msg::Eof(i) => {
                    left -= 1;
                    if half && won(&winner).is_none() {
                        // Closed without sending: it can never win.
                        verdicts.kill(i);
                    }
                }
                Msg::Failed(i, e) => {
                    left -= 1;
                    tracing::warn!(session = %entry.id, target = i, reason = %e, "fan-out target dropped");
                    verdicts.kill(i);
                    if half && won(&winner) == Some(i) {
                        return Err(e);
                    }
                }
            }
        }
        // Every target is done: the client reads EOF.
        client_w.finish(0).await
    };

    let latch = async {
        if !half || latch_timeout.is_zero() {
            return std::future::pending().await;
        }
        tokio::time::sleep(latch_timeout).await;
        if won(&winner).is_none() {
            return;
        }
        std::future::pending().await
    };

    let result = tokio::select! {
        r = async { tokio::try_join!(up, down).map(|_| ()) } => r,
        _ = entry.kill.notified() => Err(Abort::Kicked),
        _ = latch => Err(Abort::LatchTimeout),
    };
    for h in &readers {
        h.abort();
    }
    result
}
