//! A TCP forwarder that holds every new connection for a while before connecting it through:
//! a bus peer whose transport takes that long to come up, so a test can open sessions while a
//! node's transports are still being set up (CONTRACT 9.4).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running forwarder.
#[derive(Debug, Clone)]
pub struct Forward {
    /// `tcp://127.0.0.1:PORT`, to give as the peer.
    pub url: String,
    /// Milliseconds each new connection is held before it is connected through.
    pub hold_ms: Arc<AtomicU64>,
}

/// Forwards connections on a fresh loopback port to `target` (`HOST:PORT`), each after `hold`.
pub fn delayed_forward(target: &str, hold: Duration) -> Forward {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind forwarder");
    let url = format!("tcp://{}", l.local_addr().expect("addr"));
    let hold_ms = Arc::new(AtomicU64::new(hold.as_millis() as u64));
    let h = hold_ms.clone();
    let target = target.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let target = target.clone();
            let hold = Duration::from_millis(h.load(Ordering::Relaxed));
            std::thread::spawn(move || {
                std::thread::sleep(hold);
                let Ok(t) = TcpStream::connect(&target) else {
                    return;
                };
                pipe(c, t);
            });
        }
    });
    Forward { url, hold_ms }
}

/// Forwards connections on a fresh loopback port to `target`, at most `bytes_per_sec` each way,
/// through a small receive buffer: a slow link, so what a node writes to it waits in the node.
pub fn throttled_forward(target: &str, bytes_per_sec: u64) -> String {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    s.bind(&any.into()).expect("bind forwarder");
    s.listen(128).expect("listen");
    let l: TcpListener = s.into();
    let url = format!("tcp://{}", l.local_addr().expect("addr"));
    let target = target.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let Ok(t) = TcpStream::connect(&target) else {
                continue;
            };
            std::thread::spawn(move || pipe_at(c, t, Some(bytes_per_sec)));
        }
    });
    url
}

fn pipe(a: TcpStream, b: TcpStream) {
    pipe_at(a, b, None)
}

fn pipe_at(a: TcpStream, b: TcpStream, rate: Option<u64>) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy(a2, b2, rate));
    copy(b, a, rate);
}

/// Copies until EOF; with a rate, 4 KiB at a time, sleeping to keep to it.
fn copy(mut from: TcpStream, mut to: TcpStream, rate: Option<u64>) {
    let chunk = if rate.is_some() { 4 * 1024 } else { 64 * 1024 };
    let mut buf = vec![0u8; chunk];
    let start = std::time::Instant::now();
    let mut moved = 0u64;
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        moved += n as u64;
        if let Some(r) = rate {
            let due = Duration::from_secs_f64(moved as f64 / r as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A forwarder whose answers can be held back: while `open` is false, nothing the target
/// sends is passed back to the connecting side (it waits in the target's socket), whatever
/// the connecting side sends goes through. A node dialling through it then hears nothing
/// from its peer, so a test can see what the peer did with the node's first flight alone.
#[derive(Debug, Clone)]
pub struct Gate {
    pub url: String,
    pub open: Arc<std::sync::atomic::AtomicBool>,
    /// Bytes passed back from the target, over every connection.
    pub answered: Arc<AtomicU64>,
}

/// A [`Gate`] in front of `target` (`HOST:PORT`), open at first.
pub fn gated_forward(target: &str) -> Gate {
    use std::sync::atomic::AtomicBool;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind forwarder");
    let gate = Gate {
        url: format!("tcp://{}", l.local_addr().expect("addr")),
        open: Arc::new(AtomicBool::new(true)),
        answered: Arc::new(AtomicU64::new(0)),
    };
    let (target, g) = (target.to_string(), gate.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let Ok(t) = TcpStream::connect(&target) else {
                continue;
            };
            let (Ok(c2), Ok(t2)) = (c.try_clone(), t.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || copy(c2, t2, None));
            let g = g.clone();
            std::thread::spawn(move || answer(t, c, &g));
        }
    });
    gate
}

/// Passes the target's bytes back while the gate is open, counting them.
fn answer(mut from: TcpStream, mut to: TcpStream, g: &Gate) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while !g.open.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        match from.read(&mut buf) {
            Ok(n) if n > 0 => {
                g.answered.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A forwarder that can be cut: [`Cut::cut`] shuts every connection through it at once and
/// refuses new ones (accepted, then closed) until [`Cut::mend`]. A client behind it sees its
/// server vanish while the server itself runs on, as in a network partition.
#[derive(Debug, Clone)]
pub struct Cut {
    /// `HOST:PORT` to connect to instead of the target.
    pub addr: String,
    open: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Cut {
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for s in conns.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn mend(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A [`Cut`] in front of `target` (`HOST:PORT`), open at first.
pub fn cuttable_forward(target: &str) -> Cut {
    use std::sync::atomic::AtomicBool;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind forwarder");
    let cut = Cut {
        addr: l.local_addr().expect("addr").to_string(),
        open: Arc::new(AtomicBool::new(true)),
        conns: Arc::default(),
    };
    let (target, c) = (target.to_string(), cut.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            if !c.open.load(Ordering::SeqCst) {
                continue;
            }
            let Ok(t) = TcpStream::connect(&target) else {
                continue;
            };
            if let (Ok(s2), Ok(t2)) = (s.try_clone(), t.try_clone()) {
                let mut conns = c.conns.lock().unwrap_or_else(|e| e.into_inner());
                conns.push(s2);
                conns.push(t2);
            }
            std::thread::spawn(move || pipe(s, t));
        }
    });
    cut
}
