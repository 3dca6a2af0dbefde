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

fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy(a2, b2));
    copy(b, a);
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
