//! Backends with the behaviours the contract talks about, on loopback port 0. Each runs on
//! plain threads and lives until the test process ends.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running test backend.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
}

impl Backend {
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

pub(crate) fn serve(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
    serve_on(listen_wide(None), handler)
}

/// Like [`serve`], on a listener whose connections get a receive buffer of `rcvbuf` bytes: the
/// kernel then holds little for the backend, so the proxy's writes to it really wait.
pub(crate) fn serve_narrow(
    rcvbuf: usize,
    handler: impl Fn(TcpStream) + Send + Sync + 'static,
) -> Backend {
    serve_on(listen_wide(Some(rcvbuf)), handler)
}

fn serve_on(l: TcpListener, handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
    let addr = l.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let h = handler.clone();
            std::thread::spawn(move || h(s));
        }
    });
    Backend { addr, accepted }
}

/// Echoes everything; on EOF, half-closes back.
pub fn echo() -> Backend {
    serve(|mut s| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Speaks first: writes `banner` as soon as a connection arrives, then echoes.
pub fn banner(banner: &'static [u8]) -> Backend {
    serve(move |mut s| {
        if s.write_all(banner).is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Reads until EOF, then replies with `"got N bytes"` and closes: proves half-close.
pub fn count_then_reply() -> Backend {
    serve(|mut s| {
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(_) => return,
            }
        }
        let _ = s.write_all(format!("got {total} bytes").as_bytes());
        let _ = s.shutdown(Shutdown::Write);
    })
}

/// Sends `n` bytes of a known pattern (byte i = i % 251), then closes.
pub fn source(n: usize) -> Backend {
    serve(move |mut s| {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let _ = s.write_all(&data);
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// Accepts and holds connections without reading or writing.
pub fn silent() -> Backend {
    serve(|s| {
        std::thread::sleep(Duration::from_secs(600));
        drop(s);
    })
}

/// A loopback listener with a deep accept queue, so bursts of test sessions are not dropped.
fn listen_wide(rcvbuf: Option<usize>) -> TcpListener {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    s.bind(&any.into()).expect("bind backend");
    s.listen(4096).expect("listen");
    s.into()
}

/// An address that refuses connections for as long as the test process lives: the port stays
/// bound (so no other test can take it) but never listens, so connecting gets a reset.
pub fn refusing_addr() -> String {
    use socket2::{Domain, Socket, Type};
    static HELD: std::sync::Mutex<Vec<Socket>> = std::sync::Mutex::new(Vec::new());
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    s.bind(&any.into()).expect("bind");
    let addr = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("local addr")
        .to_string();
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    addr
}

/// An address whose connects hang: a listener with a full accept queue that never accepts, so
/// the kernel drops further SYNs and a dial waits until its own timeout. For a session that must
/// stay in its backend dial (and so read nothing from its stream) while a test acts.
pub fn hanging_addr() -> String {
    use socket2::{Domain, Socket, Type};
    static HELD: std::sync::Mutex<Vec<(Socket, Vec<std::net::TcpStream>)>> =
        std::sync::Mutex::new(Vec::new());
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    s.bind(&any.into()).expect("bind");
    s.listen(0).expect("listen");
    let addr = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("local addr");
    // Fill the queue: what the kernel keeps for a backlog of 0, and one more for good measure.
    let fillers: Vec<_> = (0..2)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((s, fillers));
    addr.to_string()
}

/// A free port to bind later (bound, then released; another process could take it meanwhile,
/// so use it only where that race cannot matter).
pub fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr").to_string();
    drop(l);
    a
}

/// The pattern `source` sends, for comparing.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Reads the client's first bytes, waits `delay`, answers `reply`, then echoes: a target of a
/// given speed for half-duplex races.
pub fn answer_after(delay: Duration, reply: &'static [u8]) -> Backend {
    serve(move |mut s| {
        let mut buf = vec![0u8; 16 * 1024];
        if !matches!(s.read(&mut buf), Ok(n) if n > 0) {
            return;
        }
        std::thread::sleep(delay);
        if s.write_all(reply).is_err() {
            return;
        }
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
}

/// Accepts and closes at once without sending anything.
pub fn close_silently() -> Backend {
    serve(drop)
}

/// Echo servers on the same port of several loopback addresses (`127.0.0.X`), so that one DNS
/// name with several A records and one port reaches all of them.
pub fn echo_on_loopbacks(last_octets: &[u8]) -> Vec<Backend> {
    for _ in 0..20 {
        let first = format!("127.0.0.{}:0", last_octets[0]);
        let Ok(l0) = TcpListener::bind(&first) else {
            continue;
        };
        let port = l0.local_addr().expect("addr").port();
        let mut listeners = vec![l0];
        for o in &last_octets[1..] {
            match TcpListener::bind(format!("127.0.0.{o}:{port}")) {
                Ok(l) => listeners.push(l),
                Err(_) => break,
            }
        }
        if listeners.len() == last_octets.len() {
            return listeners.into_iter().map(serve_echo_on).collect();
        }
    }
    panic!("no port free on every loopback address");
}

fn serve_echo_on(l: TcpListener) -> Backend {
    let addr = l.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Backend { addr, accepted }
}

/// What a [`recorder`] saw: every byte until EOF, and whether EOF came.
#[derive(Debug, Default)]
pub struct Recording {
    pub bytes: Vec<u8>,
    pub eof: bool,
}

/// Records everything it receives (one connection's worth at a time), answers `reply` to every
/// read: a mirror whose replies must never reach the client.
pub fn recorder(reply: &'static [u8]) -> (Backend, Arc<std::sync::Mutex<Recording>>) {
    let rec = Arc::new(std::sync::Mutex::new(Recording::default()));
    let r = rec.clone();
    let b = serve(move |mut s| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    r.lock().unwrap().eof = true;
                    return;
                }
                Ok(n) => {
                    r.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                    let _ = s.write_all(reply);
                }
                Err(_) => return,
            }
        }
    });
    (b, rec)
}

/// What a [`held_mirror`] saw, and when.
#[derive(Debug, Default)]
pub struct Held {
    /// Bytes read (always 0 for a mirror that does not read).
    pub bytes: usize,
    /// When it read EOF.
    pub eof_at: Option<Instant>,
    /// When a write failed because the other side had closed the connection.
    pub closed_at: Option<Instant>,
}

/// A mirror that never closes its side. With `reads` it reads everything until EOF; without, it
/// never reads. Either way it then writes one byte every 50 ms until a write fails, which is
/// how it learns, without closing or reading, that the other side closed the connection (a
/// closed socket answers data with a reset). It gives up after 60 s.
pub fn held_mirror(reads: bool) -> (Backend, Arc<std::sync::Mutex<Held>>) {
    let held = Arc::new(std::sync::Mutex::new(Held::default()));
    let h = held.clone();
    let b = serve(move |mut s| {
        if reads {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.lock().unwrap_or_else(|e| e.into_inner()).bytes += n,
                    Err(_) => return,
                }
            }
            h.lock().unwrap_or_else(|e| e.into_inner()).eof_at = Some(Instant::now());
        }
        let give_up = Instant::now() + Duration::from_secs(60);
        while Instant::now() < give_up {
            if s.write_all(b".").is_err() {
                h.lock().unwrap_or_else(|e| e.into_inner()).closed_at = Some(Instant::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (b, held)
}
