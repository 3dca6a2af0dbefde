//! Backends that remember what the proxy did to them — when their connection was closed, how
//! many bytes reached them, what came after their own EOF — so tests can assert what busway did
//! to a target, not only what the client saw.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backends::{serve, serve_narrow, Backend};

/// What one connection to a witness saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Bytes read from the proxy.
    pub bytes: usize,
    /// When the proxy's side ended (EOF or reset).
    pub closed_at: Option<Instant>,
    /// When this backend answered, if it did.
    pub answered_at: Option<Instant>,
}

/// Every connection a witness accepted, in order.
pub type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, i: usize, f: impl FnOnce(&mut Seen)) {
    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut l[i]);
}

fn new_entry(log: &Log) -> usize {
    let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
    l.push(Seen::default());
    l.len() - 1
}

/// Reads until the proxy closes, counting, and answers `reply` once, `delay` after the first
/// bytes arrived (never, for `None`); after answering it echoes. A half-duplex loser that is
/// never told anything shows in `closed_at` staying `None`.
pub fn witness(answer: Option<(Duration, &'static [u8])>) -> (Backend, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let b = serve(move |mut s: TcpStream| {
        let i = new_entry(&l);
        let mut buf = vec![0u8; 64 * 1024];
        let mut first: Option<Instant> = None;
        let mut answered = false;
        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
        loop {
            if let (Some((delay, reply)), Some(t), false) = (answer, first, answered) {
                if t.elapsed() >= delay {
                    answered = true;
                    // Recorded before the write: once the reply is out, a client may read it
                    // (and look here) before this thread runs again.
                    record(&l, i, |e| e.answered_at = Some(Instant::now()));
                    if s.write_all(reply).is_err() {
                        break;
                    }
                }
            }
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    first.get_or_insert_with(Instant::now);
                    record(&l, i, |e| e.bytes += n);
                    if answered && s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        record(&l, i, |e| e.closed_at = Some(Instant::now()));
    });
    (b, log)
}

/// Reads `chunk` bytes at a time with a `pause` between reads, through a small receive buffer,
/// and once the proxy half-closes, answers `got N bytes` and closes: a target whose writes from
/// the proxy stay pending.
pub fn slow_counter(chunk: usize, pause: Duration) -> Backend {
    serve_narrow(16 * 1024, move |mut s: TcpStream| {
        let mut total = 0usize;
        let mut buf = vec![0u8; chunk];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(_) => return,
            }
            std::thread::sleep(pause);
        }
        let _ = s.write_all(format!("got {total} bytes").as_bytes());
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Waits `delay` after accepting, then closes without a byte.
pub fn close_after(delay: Duration) -> Backend {
    serve(move |s: TcpStream| {
        std::thread::sleep(delay);
        drop(s);
    })
}

/// Sends `n` bytes of [`crate::backends::pattern`], half-closes, then records everything the
/// proxy still sends it: proves the client's bytes still flow after the backend's EOF.
pub fn source_then_listen(n: usize) -> (Backend, Arc<Mutex<Vec<u8>>>) {
    let after = Arc::new(Mutex::new(Vec::new()));
    let a = after.clone();
    let b = serve(move |mut s: TcpStream| {
        let _ = s.write_all(&crate::backends::pattern(n));
        let _ = s.shutdown(Shutdown::Write);
        let mut buf = [0u8; 4096];
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            a.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..k]);
        }
    });
    (b, after)
}

/// Sends `blocks` blocks of `size` bytes of `byte`, one every `every`, then waits for EOF and
/// closes: full-duplex targets whose chunks must reach the client whole.
pub fn blocks(byte: u8, size: usize, blocks: usize, every: Duration) -> Backend {
    serve(move |mut s: TcpStream| {
        let block = vec![byte; size];
        for _ in 0..blocks {
            if s.write_all(&block).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    })
}
