//! What the outside sees of a transport: `/v1/peers` rows and the peer metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use super::driver::Cmd;

#[derive(Debug)]
pub struct TransportInfo {
    /// The other end's address as this node sees it.
    pub peer: String,
    /// Commands to the transport's driver.
    pub cmd: mpsc::Sender<Cmd>,
    node: Mutex<String>,
    state: Mutex<&'static str>,
    rtt_us: AtomicU64,
    pub streams: AtomicUsize,
    /// Opens asked of this transport and not answered yet: counted with `streams` when choosing
    /// the least-loaded transport, so a burst of new sessions does not all pick the same one.
    pub opening: AtomicUsize,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub going_away: AtomicBool,
}

#[derive(Debug, Serialize)]
pub struct PeerView {
    pub peer: String,
    pub node: String,
    pub state: &'static str,
    pub rtt_ms: f64,
    pub sessions: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl TransportInfo {
    pub fn new(peer: String, cmd: mpsc::Sender<Cmd>) -> Arc<TransportInfo> {
        Arc::new(TransportInfo {
            peer,
            cmd,
            node: Mutex::new(String::new()),
            state: Mutex::new("handshaking"),
            rtt_us: AtomicU64::new(0),
            streams: AtomicUsize::new(0),
            opening: AtomicUsize::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            going_away: AtomicBool::new(false),
        })
    }

    pub fn set_node(&self, node: &str) {
        *self.node.lock().unwrap_or_else(|e| e.into_inner()) = node.to_string();
    }
    pub fn node(&self) -> String {
        self.node.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set_state(&self, s: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
    pub fn state(&self) -> &'static str {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn set_rtt(&self, d: Duration) {
        self.rtt_us.store(d.as_micros() as u64, Ordering::Relaxed);
    }
    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.load(Ordering::Relaxed))
    }
    /// Established and not draining: may carry new sessions.
    pub fn usable(&self) -> bool {
        self.state() == "up" && !self.going_away.load(Ordering::Relaxed)
    }

    pub fn view(&self) -> PeerView {
        PeerView {
            peer: self.peer.clone(),
            node: self.node(),
            state: self.state(),
            rtt_ms: self.rtt().as_secs_f64() * 1000.0,
            sessions: self.streams.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Every live transport of the node, dialled or accepted.
#[derive(Debug, Default)]
pub struct Transports(Mutex<Vec<Weak<TransportInfo>>>);

impl Transports {
    pub fn add(&self, t: &Arc<TransportInfo>) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(t));
    }
    pub fn all(&self) -> Vec<Arc<TransportInfo>> {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().filter_map(|w| w.upgrade()).collect()
    }
}
