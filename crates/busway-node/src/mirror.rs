//! Mirroring (an L4 tee): shadow targets get a copy of the client's bytes and its EOF; their
//! replies are read and discarded.
//!
//! A mirror must never slow or break the real session, so the session only ever *offers* a
//! chunk: each mirror has a queue of [`QUEUE_CHUNKS`] chunks, and a mirror whose queue is full
//! (slow) or whose connection failed (dead) is cut off for the rest of the session and counted
//! in `busway_mirror_dropped_total` — a partial copy with a hole in it would be worse than none.
//! Mirrors are dialled by the node that lists them, in the background, so a session never waits
//! for one; bytes offered before the mirror is connected wait in its queue.

use std::sync::Arc;
use std::time::Duration;

use busway_config::Address;
use busway_net::dial_address;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::metrics::ServiceMetrics;

/// Chunks (of at most 64 KiB) queued per mirror before it is cut off.
pub const QUEUE_CHUNKS: usize = 64;

/// The mirrors of one session.
#[derive(Debug, Default)]
pub struct Mirrors {
    sinks: std::sync::Mutex<Vec<Option<mpsc::Sender<Bytes>>>>,
    metrics: Option<Arc<ServiceMetrics>>,
}

impl Mirrors {
    /// Starts one background copier per mirror address.
    pub fn start(
        addrs: &[Address],
        connect_timeout: Duration,
        metrics: Arc<ServiceMetrics>,
    ) -> Mirrors {
        let sinks = addrs
            .iter()
            .map(|a| {
                let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
                tokio::spawn(copier(a.clone(), connect_timeout, rx));
                Some(tx)
            })
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
            let Some(tx) = slot else { continue };
            match tx.try_send(b.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("mirror cannot keep up; cut off for this session");
                    *slot = None;
                    if let Some(m) = &self.metrics {
                        m.mirror_dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => *slot = None,
            }
        }
    }

    /// The client's EOF: each mirror gets it after what is queued.
    pub fn finish(&self) {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Connects one mirror and writes it what the session offers, discarding its replies; ends when
/// the session's sender is gone (EOF) or the mirror fails.
async fn copier(addr: Address, connect_timeout: Duration, mut rx: mpsc::Receiver<Bytes>) {
    let conn = match dial_address(&addr, connect_timeout).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(mirror = %addr, error = %e, "mirror unreachable");
            return;
        }
    };
    let write = async {
        while let Some(b) = rx.recv().await {
            if conn.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = conn.shutdown_write();
    };
    let discard = async { while let Ok(Some(_)) = conn.read_chunk(16 * 1024).await {} };
    tokio::join!(write, discard);
}
