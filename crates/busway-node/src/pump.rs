//! Moving a session's bytes: two copy loops, one per direction, between a client end and a
//! target end, each of which is a socket or a bus stream.
//!
//! Half-close passes through: EOF on one side becomes `shutdown(SHUT_WR)` or a `fin` on the other,
//! and the opposite direction keeps running until it ends too. An idle session holds no buffer:
//! socket reads wait for readiness first and then read into a per-thread scratch buffer, copying
//! out exactly what arrived; only a direction that keeps filling whole buffers (bulk transfer)
//! reads straight into a fresh allocation to save that copy.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, Instant};

use busway_net::Conn;
use busway_proto::ResetCode;
use bytes::{Bytes, BytesMut};

use crate::bus::{BusRecv, BusSend, Inbound};
use crate::mirror::Mirrors;
use crate::sessions::SessionEntry;

/// The most a direction moves per read.
pub const MAX_CHUNK: usize = 64 * 1024;

/// One side of a session.
pub enum End<'a> {
    Sock(&'a Conn),
    Bus(BusSend, BusRecv),
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
            Abort::Reset(ResetCode::Refused | ResetCode::Unreachable, _) => "refused",
            Abort::Reset(ResetCode::Timeout, _) | Abort::LatchTimeout => "timeout",
            Abort::Kicked | Abort::Idle => "ok",
            _ => "error",
        }
    }
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Reset(code, reason) => write!(f, "reset by peer ({}): {reason}", code.as_str()),
            Abort::TransportClosed(r) => write!(f, "transport closed: {r}"),
            Abort::Io(e) => write!(f, "socket error: {e}"),
            Abort::Kicked => f.write_str("closed by operator"),
            Abort::Idle => f.write_str("idle timeout"),
            Abort::LatchTimeout => f.write_str("no target answered within latch_timeout"),
        }
    }
}

pub(crate) enum Reader<'a> {
    Sock(&'a Conn, bool),
    Bus(&'a mut BusRecv),
}

pub(crate) enum Writer<'a> {
    Sock(&'a Conn),
    Bus(&'a BusSend),
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_CHUNK]);
}

impl Reader<'_> {
    /// The next chunk, at most `max` bytes; `None` at EOF.
    pub(crate) async fn next(&mut self, max: usize) -> Result<Option<Bytes>, Abort> {
        match self {
            Reader::Sock(conn, bulk) => loop {
                conn.readable().await.map_err(Abort::Io)?;
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
                    Ok((0, _)) => return Ok(None),
                    Ok((n, b)) => {
                        *bulk = n == max;
                        return Ok(Some(b));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(Abort::Io(e)),
                }
            },
            Reader::Bus(rx) => match rx.recv().await {
                Inbound::Data(b) => Ok(Some(b)),
                Inbound::Fin => Ok(None),
                Inbound::Reset(code, reason) => Err(Abort::Reset(code, reason)),
                Inbound::Closed(r) => Err(Abort::TransportClosed(r)),
            },
        }
    }

    pub(crate) async fn delivered(&self, n: usize) {
        if let Reader::Bus(rx) = self {
            rx.consumed(n).await;
        }
    }
}

impl Writer<'_> {
    /// Credit to read against: a bus stream's window, or one chunk for a socket.
    pub(crate) async fn budget(&self) -> Result<usize, Abort> {
        match self {
            Writer::Sock(_) => Ok(MAX_CHUNK),
            Writer::Bus(tx) => tx
                .reserve(MAX_CHUNK)
                .await
                .map_err(|_| Abort::TransportClosed("stream closed".into())),
        }
    }

    pub(crate) async fn write(&self, b: Bytes, unused_budget: usize) -> Result<(), Abort> {
        match self {
            Writer::Sock(c) => c.write_all(&b).await.map_err(Abort::Io),
            Writer::Bus(tx) => {
                tx.unreserve(unused_budget);
                tx.send(b, false)
                    .await
                    .map_err(|_| Abort::TransportClosed("stream closed".into()))
            }
        }
    }

    pub(crate) async fn finish(&self, unused_budget: usize) -> Result<(), Abort> {
        match self {
            Writer::Sock(c) => {
                // The peer may already be gone; that is its EOF, not our error.
                let _ = c.shutdown_write();
                Ok(())
            }
            Writer::Bus(tx) => {
                tx.unreserve(unused_budget);
                tx.send(Bytes::new(), true)
                    .await
                    .map_err(|_| Abort::TransportClosed("stream closed".into()))
            }
        }
    }
}

/// Copies one direction; `tap` sees every chunk (`Some`) and the EOF (`None`) for counting and
/// mirroring.
async fn copy(
    mut from: Reader<'_>,
    to: Writer<'_>,
    tap: impl Fn(Option<&Bytes>),
) -> Result<(), Abort> {
    loop {
        let budget = to.budget().await?;
        match from.next(budget).await? {
            Some(b) => {
                let n = b.len();
                tap(Some(&b));
                to.write(b, budget.saturating_sub(n)).await?;
                from.delivered(n).await;
            }
            None => {
                tap(None);
                return to.finish(budget).await;
            }
        }
    }
}

pub(crate) fn split<'a>(end: &'a mut End<'_>) -> (Reader<'a>, Writer<'a>) {
    match end {
        End::Sock(c) => (Reader::Sock(c, false), Writer::Sock(c)),
        End::Bus(tx, rx) => (Reader::Bus(rx), Writer::Bus(tx)),
    }
}

/// Runs a session until both directions have ended, one fails, it is kicked, or it idles out.
pub async fn pump(
    mut client: End<'_>,
    mut target: End<'_>,
    entry: &SessionEntry,
    idle_timeout: Duration,
    mirrors: &Mirrors,
) -> Result<(), Abort> {
    let (client_r, client_w) = split(&mut client);
    let (target_r, target_w) = split(&mut target);
    // The copy futures are built inside the join, not bound to locals first: an async block keeps
    // its captured futures beside the join's own copies, doubling every idle session's state.
    let both = async move {
        tokio::try_join!(
            copy(client_r, target_w, |b| match b {
                Some(b) => {
                    entry.add_in(b.len());
                    mirrors.offer(b);
                }
                None => mirrors.finish(),
            }),
            copy(target_r, client_w, |b| entry
                .add_out(b.map_or(0, |b| b.len()))),
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
    use crate::bus::{stream::Shared, TransportInfo};
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
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let info = TransportInfo::new("p".into(), tx);
        let (send, recv) = crate::bus::stream::new_stream(1, info, Shared::new(0));
        let m = Mirrors::default();
        let sock = pump(End::Sock(&a), End::Sock(&b), &t.entry, Duration::ZERO, &m);
        let bus = pump(
            End::Sock(&a),
            End::Bus(send, recv),
            &t.entry,
            Duration::ZERO,
            &m,
        );
        eprintln!(
            "pump futures: sock-sock {} bytes, sock-bus {} bytes",
            std::mem::size_of_val(&sock),
            std::mem::size_of_val(&bus)
        );
        // 1.2 KiB today; the bound leaves room but catches a doubling.
        assert!(std::mem::size_of_val(&bus) < 2048);
        assert!(std::mem::size_of_val(&sock) < 2048);
    }
}
