//! A forwarder that counts the bytes of each connection through it and can kill one of them
//! with a TCP reset at both ends: a bus transport lost mid-transfer, with whatever was in
//! flight on it lost too, while the other transports between the same nodes run on.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// One connection through the forwarder. Its sockets are held by the two copy threads alone,
/// so they close when those end.
#[derive(Debug)]
struct Link {
    outer: Weak<TcpStream>,
    inner: Weak<TcpStream>,
    /// Bytes moved, both ways.
    bytes: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
}

/// A running forwarder.
#[derive(Debug, Clone)]
pub struct RstForward {
    /// `tcp://127.0.0.1:PORT`, to give as the peer.
    pub url: String,
    links: Arc<Mutex<Vec<Link>>>,
}

impl RstForward {
    /// Bytes moved so far by each connection, in the order they came.
    pub fn bytes(&self) -> Vec<u64> {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links
            .iter()
            .map(|l| l.bytes.load(Ordering::Relaxed))
            .collect()
    }

    /// Resets the connection that moved the most bytes (the one carrying the transfer), at
    /// both ends; returns its index in [`RstForward::bytes`].
    pub fn reset_busiest(&self) -> usize {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let (i, l) = links
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.cut.load(Ordering::Relaxed))
            .max_by_key(|(_, l)| l.bytes.load(Ordering::Relaxed))
            .expect("a connection to reset");
        l.cut.store(true, Ordering::Relaxed);
        for s in [&l.outer, &l.inner].into_iter().filter_map(Weak::upgrade) {
            // Linger 0: the close that follows is abortive, an RST, and drops what is queued.
            let _ = socket2::SockRef::from(s.as_ref()).set_linger(Some(Duration::ZERO));
            // Wakes the copy threads (their reads return 0) without sending a FIN; once both
            // let go of the sockets, they close, with the RST.
            let _ = s.shutdown(Shutdown::Read);
        }
        i
    }
}

/// Forwards connections on a fresh loopback port to `target` (`HOST:PORT`).
pub fn rst_forward(target: &str) -> RstForward {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind forwarder");
    let f = RstForward {
        url: format!("tcp://{}", l.local_addr().expect("addr")),
        links: Arc::default(),
    };
    let (target, links) = (target.to_string(), f.links.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let Ok(t) = TcpStream::connect(&target) else {
                continue;
            };
            let (outer, inner) = (Arc::new(c), Arc::new(t));
            let link = Link {
                outer: Arc::downgrade(&outer),
                inner: Arc::downgrade(&inner),
                bytes: Arc::default(),
                cut: Arc::default(),
            };
            for (from, to) in [(outer.clone(), inner.clone()), (inner, outer)] {
                let (bytes, cut) = (link.bytes.clone(), link.cut.clone());
                std::thread::spawn(move || copy(&from, &to, &bytes, &cut));
            }
            links.lock().unwrap_or_else(|e| e.into_inner()).push(link);
        }
    });
    f
}

fn copy(mut from: &TcpStream, mut to: &TcpStream, bytes: &AtomicU64, cut: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || cut.load(Ordering::Relaxed) || to.write_all(&buf[..n]).is_err() {
            break;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    if !cut.load(Ordering::Relaxed) {
        let _ = to.shutdown(Shutdown::Write);
    }
}
