//! The registry of open sessions: what `/v1/sessions` lists, what `DELETE /v1/sessions/{id}`
//! kicks, and what a draining shutdown waits on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::metrics::ServiceMetrics;

/// One open session at this node.
#[derive(Debug)]
pub struct SessionEntry {
    pub id: Arc<str>,
    pub service: Arc<str>,
    pub client: String,
    pub mode: &'static str,
    started: Instant,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    detail: Mutex<Detail>,
    metrics: Arc<ServiceMetrics>,
    /// Notified once to close the session (admin kick or shutdown deadline).
    pub kill: Notify,
}

#[derive(Debug, Default)]
struct Detail {
    state: &'static str,
    targets: Vec<Arc<str>>,
}

impl SessionEntry {
    /// Counts bytes from the client towards the targets.
    pub fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts bytes from the targets towards the client.
    pub fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes moved either way, for idle detection.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed) + self.bytes_out.load(Ordering::Relaxed)
    }

    pub fn set_state(&self, state: &'static str) {
        self.detail.lock().unwrap_or_else(|e| e.into_inner()).state = state;
    }

    pub fn set_targets(&self, targets: Vec<Arc<str>>) {
        self.detail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .targets = targets;
    }

    pub fn view(&self) -> SessionView {
        let d = self.detail.lock().unwrap_or_else(|e| e.into_inner());
        SessionView {
            id: self.id.to_string(),
            service: self.service.to_string(),
            client: self.client.clone(),
            mode: self.mode,
            state: d.state,
            targets: d.targets.iter().map(|t| t.to_string()).collect(),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            age_ms: self.started.elapsed().as_millis() as u64,
        }
    }
}

/// The admin API's JSON shape of a session.
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: String,
    pub service: String,
    pub client: String,
    pub mode: &'static str,
    pub state: &'static str,
    pub targets: Vec<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub age_ms: u64,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<Arc<str>, Arc<SessionEntry>>>,
    emptied: Notify,
}

/// Removes the session from the registry (and counts it out of `sessions_active`) on drop.
#[derive(Debug)]
pub struct Ticket {
    pub entry: Arc<SessionEntry>,
    registry: Arc<Sessions>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.entry.metrics.active.fetch_sub(1, Ordering::Relaxed);
        let mut m = self.registry.map.lock().unwrap_or_else(|e| e.into_inner());
        // Only our own entry: the id is unique while we hold it.
        if m.get(&self.entry.id)
            .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
        {
            m.remove(&self.entry.id);
        }
        if m.is_empty() {
            self.registry.emptied.notify_waiters();
        }
    }
}

/// A fresh random session id: 16 hex digits, the same at both ends of a bus session.
pub fn new_id() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

impl Sessions {
    /// Registers a session under `id`, or under `id.2`, `id.3`… if that id is taken: the ids
    /// an ingress sends are unique at the ingress, but a fan-out that reaches one egress twice
    /// (two addresses of one node) brings the same id twice, and each leg must be listed and
    /// kickable on its own.
    pub fn register(
        self: &Arc<Self>,
        id: Arc<str>,
        service: Arc<str>,
        client: String,
        mode: &'static str,
        metrics: Arc<ServiceMetrics>,
    ) -> Ticket {
        metrics.active.fetch_add(1, Ordering::Relaxed);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = id.clone();
        let mut n = 1u64;
        while m.contains_key(&key) {
            n += 1;
            key = format!("{id}.{n}").into();
        }
        let entry = Arc::new(SessionEntry {
            id: key.clone(),
            service,
            client,
            mode,
            started: Instant::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            detail: Mutex::new(Detail {
                state: "connecting",
                targets: Vec::new(),
            }),
            metrics,
            kill: Notify::new(),
        });
        m.insert(key, entry.clone());
        drop(m);
        Ticket {
            entry,
            registry: self.clone(),
        }
    }

    pub fn count(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A snapshot of the open sessions, taken without holding the lock while using it.
    fn entries(&self) -> Vec<Arc<SessionEntry>> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values().cloned().collect()
    }

    pub fn list(&self) -> Vec<SessionView> {
        self.entries().iter().map(|e| e.view()).collect()
    }

    /// Closes one session; false if no such id.
    pub fn kill(&self, id: &str) -> bool {
        let entry = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        match entry {
            Some(e) => {
                e.kill.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes every session.
    pub fn kill_all(&self) {
        for e in self.entries() {
            e.kill.notify_one();
        }
    }

    /// Waits until no session is open, or `limit` passes; true if empty.
    pub async fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.emptied.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colliding_id_gets_its_own_entry_and_each_leaves_alone() {
        let reg = Arc::new(Sessions::default());
        let m = Arc::new(ServiceMetrics::default());
        let reg_one =
            |id: &str| reg.register(id.into(), "s".into(), "c".into(), "one-to-one", m.clone());
        let a = reg_one("abc");
        let b = reg_one("abc");
        let c = reg_one("abc");
        assert_eq!(&*a.entry.id, "abc");
        assert_eq!(&*b.entry.id, "abc.2");
        assert_eq!(&*c.entry.id, "abc.3");
        assert_eq!(reg.count(), 3);
        // The first to end removes only itself; the others stay listed and kickable.
        drop(a);
        assert_eq!(reg.count(), 2);
        assert!(reg.kill("abc.2") && reg.kill("abc.3"));
        assert!(!reg.kill("abc"));
        drop(b);
        drop(c);
        assert_eq!(reg.count(), 0);
        assert_eq!(m.active.load(Ordering::Relaxed), 0);
    }
}
