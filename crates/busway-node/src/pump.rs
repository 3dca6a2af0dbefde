//! Moving a session's bytes: two copy loops, one per direction, between a client end and a
//! target end, each of which is a socket or a bus stream.
//!
//! Half-close passes through: EOF on one side becomes `shutdown(SHUT_WR)` or a `fin` on the
//! other, and the opposite direction keeps running until it ends too. A socket is read only
//! once the bus stream it feeds has credit, so a session never reads what it cannot send; bus
//! bytes are released only once written to the socket, so a slow reader holds back its own
//! stream and nothing else. An idle session holds no buffer: socket reads wait for readiness and
//! then read into a per-thread scratch buffer, copying out exactly what arrived; only a
//! direction that keeps filling whole buffers (bulk transfer) reads straight into a fresh
//! allocation, which then travels to the other socket without another copy.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use busway_net::Conn;
use busway_proto::ResetCode;
use bytes::{Bytes, BytesMut};

use crate::bus::{BusStream, StreamEnd};
use crate::mirror::Mirrors;
use crate::sessions::SessionEntry;

/// The most a direction moves per read.
pub const MAX_CHUNK: usize = 64 * 1024;

/// One side of a session.
#[derive(Clone, Copy)]
pub enum End<'a> {
    Sock(&'a Conn),
    Bus(&'a BusStream),
}

/// How a session ended, when it did not end cleanly.
#[derive(Debug)]
pub enum Abort {
    /// The other node reset the stream.
    Reset(ResetCode, String),
    /// The transport carrying the stream went away.
    TransportClosed(String),
    /// A socket failed.
    Io(io::Error),
    /// An operator (or the shutdown deadline) closed it.
    Kicked,
    /// No byte either way for `idle_timeout`.
    Idle,
    /// Half duplex: no target answered within `latch_timeout`.
    LatchTimeout,
}

impl Abort {
    /// The `outcome` label this ending counts as.
    pub fn outcome(&self) -> &'static str {
        match self {
            Abort::Reset(ResetCode::Refused | ResetCode::Unreachable | ResetCode::Loop, _) => {
                "refused"
            }
            Abort::Reset(ResetCode::Timeout, _) | Abort::LatchTimeout => "timeout",
            Abort::Reset(ResetCode::Forbidden, _) => "forbidden",
            Abort::Kicked | Abort::Idle => "ok",
            _ => "error",
        }
    }
}

impl From<StreamEnd> for Abort {
    fn from(e: StreamEnd) -> Abort {
        match e {
            StreamEnd::Reset(code, reason) => Abort::Reset(code, reason),
            StreamEnd::Closed(why) => Abort::TransportClosed(why),
        }
    }
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Reset(code, reason) => write!(
                f,
                "reset by peer ({}): {}",
                code.as_str(),
                busway_proto::clip(reason, 128)
            ),
            Abort::TransportClosed(r) => write!(f, "transport closed: {r}"),
            Abort::Io(e) => write!(f, "socket error: {e}"),
            Abort::Kicked => f.write_str("closed by operator"),
            Abort::Idle => f.write_str("idle timeout"),
            Abort::LatchTimeout => f.write_str("no target answered within latch_timeout"),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_CHUNK]);
}

/// Reads a socket once it is readable, at most `max` bytes; `Ok(None)` at EOF and `Ok(Some(
/// empty))` when the readiness was stale. `bulk` switches to reading into a fresh buffer while
/// reads keep filling it.
pub(crate) fn try_read_sock(conn: &Conn, max: usize, bulk: &mut bool) -> io::Result<Option<Bytes>> {
    let r = if *bulk {
        let mut buf = BytesMut::with_capacity(max);
        conn.try_read_buf(&mut buf).map(|n| (n, buf.freeze()))
    } else {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let n = conn.try_read(&mut s[..max])?;
            Ok((n, Bytes::copy_from_slice(&s[..n])))
        })
    };
    match r {
        Ok((0, _)) => Ok(None),
        Ok((n, b)) => {
            *bulk = n == max;
            Ok(Some(b))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(Bytes::new())),
        Err(e) => Err(e),
    }
}

impl End<'_> {
    /// Waits until a chunk may be written here, and says how large (a socket takes a whole one).
    pub(crate) async fn capacity(&self) -> Result<usize, Abort> {
        match self {
            End::Sock(_) => Ok(MAX_CHUNK),
            End::Bus(s) => Ok(s.capacity().await?.min(MAX_CHUNK)),
        }
    }

    /// The capacity now, without waiting (0 when blocked).
    fn capacity_now(&self) -> Result<usize, Abort> {
        match self {
            End::Sock(_) => Ok(MAX_CHUNK),
            End::Bus(s) => Ok(s.capacity_now()?.min(MAX_CHUNK)),
        }
    }

    /// The next chunk from this end, at most `max` bytes; `None` at EOF.
    pub(crate) async fn next(&self, max: usize, bulk: &mut bool) -> Result<Option<Bytes>, Abort> {
        match self {
            End::Sock(c) => loop {
                c.readable().await.map_err(Abort::Io)?;
                match try_read_sock(c, max, bulk).map_err(Abort::Io)? {
                    Some(b) if b.is_empty() => continue,
                    other => return Ok(other),
                }
            },
            End::Bus(s) => Ok(s.read(max).await?),
        }
    }

    /// The next chunk from this end, no larger than `to` can take now; `None` at EOF. A socket
    /// is read only once `to` has room, so what is read can always be sent.
    pub(crate) async fn next_for(
        &self,
        to: &End<'_>,
        bulk: &mut bool,
    ) -> Result<Option<Bytes>, Abort> {
        match self {
            End::Sock(c) => loop {
                to.capacity().await?;
                c.readable().await.map_err(Abort::Io)?;
                // Readiness may come long after the capacity did; ask again, without waiting.
                let max = to.capacity_now()?;
                if max == 0 {
                    continue;
                }
                match try_read_sock(c, max, bulk).map_err(Abort::Io)? {
                    Some(b) if b.is_empty() => continue,
                    other => return Ok(other),
                }
            },
            End::Bus(s) => Ok(s.read(MAX_CHUNK).await?),
        }
    }

    /// The bytes of a chunk read here are written out: a bus stream may take that much more.
    pub(crate) fn release(&self, n: usize) {
        if let End::Bus(s) = self {
            s.release(n);
        }
    }

    /// Writes a whole chunk, waiting for the socket or for credit. A poll function, not nested
    /// `async fn`s: this state is in every session twice.
    pub(crate) async fn write_all(&self, mut b: Bytes) -> Result<(), Abort> {
        std::future::poll_fn(move |cx| match self {
            End::Sock(c) => c.poll_write_all(cx, &mut b).map_err(Abort::Io),
            End::Bus(s) => s.poll_write_all(cx, &mut b).map_err(Abort::from),
        })
        .await
    }

    /// Passes EOF on: `shutdown(SHUT_WR)` or a fin.
    pub(crate) fn finish(&self) -> Result<(), Abort> {
        self.finish_unless_closing(false)
    }

    /// Passes EOF on, except that a socket about to be closed (`closing`: its other direction
    /// ended too, so it was read to its EOF) gets no `shutdown`: the close sends the FIN, and
    /// a new session per request saves a syscall.
    fn finish_unless_closing(&self, closing: bool) -> Result<(), Abort> {
        if closing && matches!(self, End::Sock(_)) {
            return Ok(());
        }
        match self {
            End::Sock(c) => {
                // The peer may already be gone; that is its EOF, not our error.
                let _ = c.shutdown_write();
                Ok(())
            }
            End::Bus(s) => Ok(s.finish()?),
        }
    }
}

/// Copies one direction; `tap` sees every chunk (`Some`) and the EOF (`None`) for counting and
/// mirroring. `done` is this direction's flag, `other` the opposite one's: the direction that
/// ends last ends the session.
async fn copy(
    from: End<'_>,
    to: End<'_>,
    tap: impl Fn(Option<&Bytes>),
    done: &AtomicBool,
    other: &AtomicBool,
) -> Result<(), Abort> {
    let mut bulk = false;
    loop {
        match from.next_for(&to, &mut bulk).await? {
            Some(b) => {
                let n = b.len();
                tap(Some(&b));
                to.write_all(b).await?;
                from.release(n);
            }
            None => {
                tap(None);
                done.store(true, Ordering::Relaxed);
                return to.finish_unless_closing(other.load(Ordering::Relaxed));
            }
        }
    }
}

/// Runs a session until both directions have ended, one fails, it is kicked, or it idles out.
pub async fn pump(
    client: End<'_>,
    target: End<'_>,
    entry: &SessionEntry,
    idle_timeout: Duration,
    mirrors: &Mirrors,
) -> Result<(), Abort> {
    // The copy futures are built inside the join, not bound to locals first: an async block keeps
    // its captured futures beside the join's own copies, doubling every idle session's state.
    let (up_done, down_done) = (AtomicBool::new(false), AtomicBool::new(false));
    let (up_done, down_done) = (&up_done, &down_done);
    let both = async move {
        tokio::try_join!(
            copy(
                client,
                target,
                |b| match b {
                    Some(b) => {
                        entry.add_in(b.len());
                        mirrors.offer(b);
                    }
                    None => mirrors.finish(),
                },
                up_done,
                down_done,
            ),
            copy(
                target,
                client,
                |b| entry.add_out(b.map_or(0, |b| b.len())),
                down_done,
                up_done,
            ),
        )
        .map(|_| ())
    };
    // Boxed and only when configured: most sessions have no idle timeout, and a timer inline
    // would grow every session's state machine.
    let mut idle_timer = (!idle_timeout.is_zero()).then(|| Box::pin(idle(entry, idle_timeout)));
    let idled = async {
        match idle_timer.as_mut() {
            Some(t) => t.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = both => r,
        _ = entry.kill.notified() => Err(Abort::Kicked),
        _ = idled => Err(Abort::Idle),
    }
}

/// Resolves once no byte has moved for `limit`.
pub(crate) async fn idle(entry: &SessionEntry, limit: Duration) {
    let step = (limit / 4).max(Duration::from_millis(10));
    let mut last = entry.total_bytes();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let now = entry.total_bytes();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Transport;
    use crate::metrics::ServiceMetrics;
    use crate::sessions::Sessions;
    use std::sync::Arc;

    /// Every idle session keeps its whole state machine in memory; this guards its size.
    #[tokio::test]
    async fn a_session_state_machine_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = Conn::tcp(
            tokio::net::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap(),
        );
        let (b, _) = l.accept().await.unwrap();
        let b = Conn::tcp(b);
        let sessions = Arc::new(Sessions::default());
        let t = sessions.register(
            "x".into(),
            "svc".into(),
            "c".into(),
            "one-to-one",
            Arc::new(ServiceMetrics::default()),
        );
        let tr = Transport::new(
            "p".into(),
            busway_proto::Side::Initiator,
            busway_proto::Config::default(),
        );
        let stream = BusStream::new(tr, 1);
        let m = Mirrors::default();
        let sock = pump(End::Sock(&a), End::Sock(&b), &t.entry, Duration::ZERO, &m);
        let bus = pump(
            End::Sock(&a),
            End::Bus(&stream),
            &t.entry,
            Duration::ZERO,
            &m,
        );
        eprintln!(
            "pump futures: sock-sock {} bytes, sock-bus {} bytes",
            std::mem::size_of_val(&sock),
            std::mem::size_of_val(&bus)
        );
        // 960 bytes today; the bound catches a quarter more.
        assert!(std::mem::size_of_val(&bus) < 1200);
        assert!(std::mem::size_of_val(&sock) < 1200);
    }
}
