//! A bus peer made by hand from `busway_proto::Connection` over a real socket: it completes the
//! handshake with a node like any node would, then sends whatever a test wants — including what
//! no busway node would send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use busway_proto::{Config, Connection, Frame, Side};
use bytes::BytesMut;

pub struct FakePeer {
    pub conn: Connection,
    pub sock: TcpStream,
    rbuf: BytesMut,
}

impl FakePeer {
    /// Dials `bus` (`HOST:PORT`) and completes the handshake with `cfg`.
    pub fn established(bus: &str, cfg: Config) -> FakePeer {
        let mut p = FakePeer::start(bus, cfg);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.conn.is_established() {
            assert!(Instant::now() < deadline, "handshake did not complete");
            p.exchange();
            if let Some(e) = p.conn.error() {
                panic!("handshake failed: {e}");
            }
        }
        p.flush();
        p
    }

    /// Dials `bus` and sends the first flight, nothing more.
    pub fn start(bus: &str, cfg: Config) -> FakePeer {
        let sock = TcpStream::connect(bus).expect("connect bus");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let conn = Connection::new(Side::Initiator, cfg, rand_nonce(), Instant::now());
        let mut p = FakePeer {
            conn,
            sock,
            rbuf: BytesMut::new(),
        };
        p.flush();
        p
    }

    /// Writes what the connection has to say.
    pub fn flush(&mut self) {
        let mut out = BytesMut::new();
        self.conn.transmit(&mut out);
        let _ = self.sock.write_all(&out);
    }

    /// Sends one frame with a valid envelope (keyed when the transport is).
    pub fn send(&mut self, f: &Frame) {
        let mut b = BytesMut::new();
        self.conn.encode_frame(f, &mut b);
        self.send_raw(&b);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.sock.write_all(bytes);
    }

    /// Reads once (100 ms at most) and feeds the connection; false once the node closed.
    pub fn exchange(&mut self) -> bool {
        let mut buf = [0u8; 64 * 1024];
        match self.sock.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                self.rbuf.extend_from_slice(&buf[..n]);
                let _ = self.conn.handle_input(&mut self.rbuf, Instant::now());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
        self.flush();
        true
    }

    /// How long until the node closes this transport, if it does within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.exchange() {
                return Some(start.elapsed());
            }
        }
        None
    }
}

/// A nonce no other test peer uses.
fn rand_nonce() -> [u8; 32] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut n = [0u8; 32];
    n[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    n[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    n[12..20].copy_from_slice(&t.to_le_bytes());
    n
}
