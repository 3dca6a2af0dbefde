//! Mirroring (an L4 tee): shadow targets get a copy of the client's bytes and its EOF; their
//! replies are read and discarded.
//!
//! A mirror must never slow or break the real session, so the session only ever *offers* a
//! chunk: each mirror has a queue of [`QUEUE_CHUNKS`] chunks, and a mirror whose queue is full
//! (slow) or whose connection failed (dead) is cut off for the rest of the session and counted
//! in `busway_mirror_dropped_total` — a partial copy with a hole in it would be worse than none.
//! Mirrors are dialled by the node that lists them, in the background, so a session never waits
//! for one; bytes offered before the mirror is connected wait in its queue.
//!
//! Nor may a mirror hold anything beyond its session, whatever it does: a mirror that takes no
//! byte for [`WRITE_TIMEOUT`] is cut off; once the session has ended it has that long again to
//! take what is still queued, then it gets our FIN, then its replies are read for at most
//! [`LINGER`], then the socket is closed whether the mirror closed its side or not. A mirror cut
//! off (full queue, write timeout, flush not done in time) is closed with a reset rather than a
//! FIN, so it cannot take the truncated copy for a whole session, and its queue is freed at once.

use std::sync::Arc;
use std::time::Duration;

use busway_config::Address;
use busway_net::{dial_address, Conn};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::ServiceMetrics;

/// Chunks (of at most 64 KiB) queued per mirror before it is cut off.
pub const QUEUE_CHUNKS: usize = 64;

/// How long a mirror may take no byte before it is cut off; once its session has ended, also
/// how long it has to take everything still queued. Generous for a healthy server (a pause that
/// long is an incident), short enough that a stalled mirror holds its up to 4 MiB queue and its
/// descriptor for seconds, not forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// After our FIN, how long a mirror's replies are still read (and discarded) so that it can
/// close first; then the node closes the socket anyway.
pub const LINGER: Duration = Duration::from_secs(1);

/// The session's end of one mirror's queue.
#[derive(Debug)]
struct Sink {
    chunks: mpsc::Sender<Bytes>,
    /// Dropped unused when the session ends normally; sent to by [`Sink::cut_off`].
    cut: oneshot::Sender<()>,
}

impl Sink {
    /// Ends the copy now: the mirror drops its queue and resets its connection.
    fn cut_off(self) {
        let _ = self.cut.send(());
    }
}

/// The mirrors of one session.
#[derive(Debug, Default)]
pub struct Mirrors {
    sinks: std::sync::Mutex<Vec<Option<Sink>>>,
    metrics: Option<Arc<ServiceMetrics>>,
}

impl Mirrors {
    /// Starts one background copier per mirror address.
    pub fn start(
        addrs: &[Address],
        connect_timeout: Duration,
        metrics: Arc<ServiceMetrics>,
    ) -> Mirrors {
        let limits = Limits {
            connect: connect_timeout,
            write: WRITE_TIMEOUT,
            linger: LINGER,
        };
        let sinks = addrs
            .iter()
            .map(|a| Some(spawn_copier(a.clone(), limits, QUEUE_CHUNKS).0))
            .collect();
        Mirrors {
            sinks: std::sync::Mutex::new(sinks),
            metrics: Some(metrics),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Offers a chunk of the client's bytes to every mirror, never waiting.
    pub fn offer(&self, b: &Bytes) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for slot in sinks.iter_mut() {
            let Some(sink) = slot else { continue };
            match sink.chunks.try_send(b.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("mirror cannot keep up; cut off for this session");
                    if let Some(sink) = slot.take() {
                        sink.cut_off();
                    }
                    if let Some(m) = &self.metrics {
                        m.mirror_dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => *slot = None,
            }
        }
    }

    /// The client's EOF: each mirror gets it after what is queued (within [`WRITE_TIMEOUT`]).
    pub fn finish(&self) {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The time limits of one copier (constants in production, short in tests).
#[derive(Clone, Copy, Debug)]
struct Limits {
    connect: Duration,
    write: Duration,
    linger: Duration,
}

fn spawn_copier(
    addr: Address,
    limits: Limits,
    queue: usize,
) -> (Sink, tokio::task::JoinHandle<()>) {
    let (chunks, rx) = mpsc::channel(queue);
    let (cut, end) = oneshot::channel();
    let task = tokio::spawn(copier(addr, limits, rx, end));
    (Sink { chunks, cut }, task)
}

/// Connects one mirror, writes it what the session offers while discarding its replies, and
/// ends it as the module doc says. Holds nothing once it returns.
async fn copier(
    addr: Address,
    limits: Limits,
    rx: mpsc::Receiver<Bytes>,
    end: oneshot::Receiver<()>,
) {
    let conn = match dial_address(&addr, limits.connect).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(mirror = %addr, error = %e, "mirror unreachable");
            return;
        }
    };
    let mut replies_open = true;
    let fed = {
        let feeding = feed(&conn, rx, SessionEnd::new(end), limits.write);
        tokio::pin!(feeding);
        loop {
            tokio::select! {
                fed = &mut feeding => break fed,
                () = discard(&conn), if replies_open => replies_open = false,
            }
        }
    };
    match fed {
        Ok(()) => {
            let _ = conn.shutdown_write();
            if replies_open {
                let _ = tokio::time::timeout(limits.linger, discard(&conn)).await;
            }
        }
        Err(why) => {
            // A cut-off by the session was logged by `offer` already.
            if why != CUT_BY_SESSION {
                tracing::warn!(mirror = %addr, why, "mirror cut off; its connection is reset");
            }
            conn.abort();
        }
    }
}

/// Reads and drops the mirror's replies until its EOF or an error.
async fn discard(conn: &Conn) {
    while let Ok(Some(_)) = conn.read_chunk(16 * 1024).await {}
}

/// Why a copy stopped when its session cut it off (its queue was full).
const CUT_BY_SESSION: &str = "cut off by its session";

/// When and how the session let go of a mirror.
struct SessionEnd {
    signal: Option<oneshot::Receiver<()>>,
    /// Set when the session has ended normally: everything queued must be written by then.
    flush_by: Option<Instant>,
}

impl SessionEnd {
    fn new(signal: oneshot::Receiver<()>) -> SessionEnd {
        SessionEnd {
            signal: Some(signal),
            flush_by: None,
        }
    }

    /// Waits for the session to let go: `Err` if it cut the mirror off; a normal end starts the
    /// flush deadline. Never ready again after that.
    async fn wait(&mut self, flush: Duration) -> Result<(), &'static str> {
        let Some(signal) = self.signal.as_mut() else {
            return std::future::pending().await;
        };
        let cut = signal.await.is_ok();
        self.signal = None;
        if cut {
            return Err(CUT_BY_SESSION);
        }
        self.flush_by = Some(Instant::now() + flush);
        Ok(())
    }

    /// Whether the session cut the mirror off, without waiting.
    fn was_cut(&mut self) -> bool {
        self.signal.as_mut().is_some_and(|s| s.try_recv().is_ok())
    }
}

/// Writes the session's chunks in order until the session has ended and the queue is empty
/// (`Ok`: the mirror gets a FIN) or the copy must stop (`Err`: the mirror gets a reset).
async fn feed(
    conn: &Conn,
    mut rx: mpsc::Receiver<Bytes>,
    mut end: SessionEnd,
    write_timeout: Duration,
) -> Result<(), &'static str> {
    loop {
        // The session's signal first: a cut-off must not wait behind the queue.
        let chunk = tokio::select! {
            biased;
            ended = end.wait(write_timeout) => {
                ended?;
                continue;
            }
            chunk = rx.recv() => chunk,
        };
        let Some(chunk) = chunk else {
            // A cut-off drops the queue's sender right after signalling: look before taking
            // the closed queue for a normal end.
            return if end.was_cut() {
                Err(CUT_BY_SESSION)
            } else {
                Ok(())
            };
        };
        write_all_within(conn, &chunk, &mut end, write_timeout).await?;
    }
}

/// Writes all of `buf`, failing when the mirror takes no byte for `write_timeout` or when the
/// session's flush deadline passes.
async fn write_all_within(
    conn: &Conn,
    mut buf: &[u8],
    end: &mut SessionEnd,
    write_timeout: Duration,
) -> Result<(), &'static str> {
    let mut stalled_at = Instant::now() + write_timeout;
    while !buf.is_empty() {
        match conn.try_write(buf) {
            Ok(0) => return Err("write failed"),
            Ok(n) => {
                buf = &buf[n..];
                stalled_at = Instant::now() + write_timeout;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let limit = end.flush_by.map_or(stalled_at, |f| f.min(stalled_at));
                tokio::select! {
                    ready = conn.writable() => ready.map_err(|_| "write failed")?,
                    () = tokio::time::sleep_until(limit) => return Err("write timeout"),
                    ended = end.wait(write_timeout) => ended?,
                }
            }
            Err(_) => return Err("write failed"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    const MS: Duration = Duration::from_millis(1);
    const LIMITS: Limits = Limits {
        connect: Duration::from_secs(1),
        write: Duration::from_millis(200),
        linger: Duration::from_millis(200),
    };

    /// A copier to a fresh mirror, the mirror's accepted end, and `n` chunks of 64 KiB queued
    /// (far more than loopback socket buffers hold when `n` is large).
    async fn mirror_with_queued(n: usize) -> (TcpStream, Sink, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = Address::Tcp {
            host: "127.0.0.1".into(),
            port: l.local_addr().unwrap().port(),
        };
        let (sink, task) = spawn_copier(addr, LIMITS, n);
        let (m, _) = l.accept().await.unwrap();
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        for _ in 0..n {
            sink.chunks.try_send(chunk.clone()).unwrap();
        }
        (m, sink, task)
    }

    /// Reads until EOF or an error: the byte count, and whether it ended in a reset.
    async fn read_to_end(s: &mut TcpStream) -> (usize, bool) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return (total, false),
                Ok(n) => total += n,
                Err(e) => return (total, e.kind() == ErrorKind::ConnectionReset),
            }
        }
    }

    async fn ends_within(task: tokio::task::JoinHandle<()>, limit: Duration) -> bool {
        tokio::time::timeout(limit, task).await.is_ok()
    }

    #[tokio::test]
    async fn a_mirror_that_takes_nothing_is_reset_after_the_write_timeout_mid_session() {
        let (mut m, sink, task) = mirror_with_queued(256).await;
        // The session goes on (the sink is alive), and the mirror reads nothing.
        let started = Instant::now();
        assert!(
            ends_within(task, LIMITS.write + 500 * MS).await,
            "still copying"
        );
        assert!(
            started.elapsed() >= LIMITS.write - 20 * MS,
            "cut off before the timeout"
        );
        assert!(read_to_end(&mut m).await.1, "the mirror was not reset");
        // Its queue went with it: the session's offers now find it closed.
        assert!(sink.chunks.is_closed());
    }

    #[tokio::test]
    async fn after_the_session_a_stalled_mirror_has_the_write_timeout_to_take_its_queue() {
        let (mut m, sink, task) = mirror_with_queued(256).await;
        drop(sink);
        assert!(ends_within(task, LIMITS.write + 500 * MS).await, "held on");
        assert!(
            read_to_end(&mut m).await.1,
            "an incomplete copy ended like a whole one"
        );
    }

    #[tokio::test]
    async fn a_mirror_that_never_closes_gets_everything_and_fin_then_is_closed_after_the_linger() {
        let (mut m, sink, task) = mirror_with_queued(8).await;
        drop(sink);
        assert_eq!(read_to_end(&mut m).await, (8 * 64 * 1024, false));
        // EOF read; the mirror keeps its side open.
        let eof = Instant::now();
        assert!(ends_within(task, LIMITS.linger + 500 * MS).await, "held on");
        assert!(eof.elapsed() >= LIMITS.linger / 2, "no linger for replies");
    }

    #[tokio::test]
    async fn a_cut_off_mirror_is_reset_without_waiting_for_its_queue() {
        let (mut m, sink, task) = mirror_with_queued(64).await;
        sink.cut_off();
        assert!(ends_within(task, 200 * MS).await, "held on");
        let (got, reset) = read_to_end(&mut m).await;
        assert!(reset, "ended with a FIN after {got} bytes");
    }
}
