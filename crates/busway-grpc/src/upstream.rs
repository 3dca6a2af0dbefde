//! One upstream as the rest of the gateway sees it: its health flags, the sender into its current
//! `bidirectionalStreaming` call, and its counters. The task that keeps the call alive is in
//! [`crate::link`].

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use busway_config::Address;
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub(crate) use crate::queue::CallHandle;

const READY: u8 = 1;
const LIVE: u8 = 2;
const STREAM: u8 = 4;
const REMOVED: u8 = 8;

/// Which health flag a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flag {
    /// The last `ready` call answered `ready = true`.
    Ready,
    /// A `LiveResult{live: true}` came within `live_timeout`.
    Live,
    /// The `bidirectionalStreaming` call is open.
    Stream,
}

impl Flag {
    fn bit(self) -> u8 {
        match self {
            Flag::Ready => READY,
            Flag::Live => LIVE,
            Flag::Stream => STREAM,
        }
    }
}

/// Totals over the upstream's life, for the admin API and metrics.
#[derive(Debug, Default)]
pub(crate) struct UpstreamStats {
    pub msgs_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub msgs_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub failures: AtomicU64,
    /// Messages queued for a call that died before they reached the wire.
    pub lost_queued: AtomicU64,
    pub lost_queued_bytes: AtomicU64,
    /// Messages written to a call that died before a heartbeat confirmed them.
    pub unconfirmed: AtomicU64,
    pub unconfirmed_bytes: AtomicU64,
}

#[derive(Debug)]
pub struct Upstream {
    pub id: String,
    pub address: Address,
    /// Listed in the file (reload may remove it) rather than added through the admin API.
    pub(crate) from_config: bool,
    flags: AtomicU8,
    call: Mutex<Option<CallHandle>>,
    /// Downstreams assigned to it now.
    pub(crate) downstreams: AtomicUsize,
    pub(crate) stats: UpstreamStats,
    last_error: Mutex<String>,
    /// Wakes the link task when the upstream is removed or the gateway shuts down.
    pub(crate) stop: Notify,
    /// How long the link may take to hand over what is queued once stopped (a removal gives
    /// it [`crate::link::DRAIN`]; a flush, what is left of the node's grace).
    drain_by: Mutex<Option<Instant>>,
    /// `Some(clean)` once the link task has ended; `clean` when nothing queued was left behind.
    ended: watch::Sender<Option<bool>>,
    /// The address as logs show it, cut to [`crate::text::LOG_TEXT`] once.
    pub(crate) label: String,
}

/// `GET /v1/services/{name}/upstreams`.
#[derive(Debug, Serialize)]
pub struct UpstreamView {
    pub id: String,
    pub address: String,
    pub ready: bool,
    pub live: bool,
    pub connected: bool,
    pub state: &'static str,
    pub downstreams: usize,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub failures: u64,
    pub last_error: String,
}

impl Upstream {
    pub(crate) fn new(id: String, address: Address, from_config: bool) -> Self {
        Upstream {
            id,
            from_config,
            flags: AtomicU8::new(0),
            call: Mutex::new(None),
            downstreams: AtomicUsize::new(0),
            stats: UpstreamStats::default(),
            last_error: Mutex::new("not connected yet".to_string()),
            stop: Notify::new(),
            drain_by: Mutex::new(None),
            ended: watch::channel(None).0,
            label: crate::text::cap(&address.to_string()).into_owned(),
            address,
        }
    }

    /// Ready, live, with an open call, and not being removed: it may take downstreams.
    pub fn healthy(&self) -> bool {
        healthy(self.flags.load(Ordering::Acquire))
    }

    pub(crate) fn removed(&self) -> bool {
        self.flags.load(Ordering::Acquire) & REMOVED != 0
    }

    /// Sets or clears a flag; returns the new health if it changed.
    pub(crate) fn set(&self, flag: Flag, on: bool) -> Option<bool> {
        let old = if on {
            self.flags.fetch_or(flag.bit(), Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!flag.bit(), Ordering::AcqRel)
        };
        let new = if on {
            old | flag.bit()
        } else {
            old & !flag.bit()
        };
        (healthy(old) != healthy(new)).then_some(healthy(new))
    }

    /// Marks it removed; returns whether it was healthy until now.
    pub(crate) fn mark_removed(&self) -> bool {
        let old = self.flags.fetch_or(REMOVED, Ordering::AcqRel);
        self.stop.notify_one();
        healthy(old)
    }

    /// Marks it removed, its link to hand over what is queued by `deadline` (or sooner, if
    /// an earlier one was given).
    pub(crate) fn stop_by(&self, deadline: Instant) {
        {
            let mut by = self.drain_by.lock().unwrap_or_else(|e| e.into_inner());
            *by = Some(by.map_or(deadline, |d| d.min(deadline)));
        }
        self.mark_removed();
    }

    /// When the stopped link must give up handing over what is queued.
    pub(crate) fn drain_deadline(&self, default: Instant) -> Instant {
        self.drain_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(default)
    }

    /// Called by the link task as it ends.
    pub(crate) fn set_ended(&self, clean: bool) {
        self.ended.send_replace(Some(clean));
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// Waits until the link task has ended (or `deadline`); whether it left nothing behind.
    pub(crate) async fn ended(&self, deadline: Instant) -> bool {
        let mut rx = self.ended.subscribe();
        let ended = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await;
        let clean = matches!(ended.as_ref().map(|r| r.as_deref()), Ok(Ok(Some(true))));
        clean
    }

    pub(crate) fn call(&self) -> Option<CallHandle> {
        self.call.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the call `h` if it is still the current one (a sender found it dead); returns
    /// whether it was. A sender holding an older call must not take down a newer one.
    pub(crate) fn drop_call(&self, h: &CallHandle) -> bool {
        let mut c = self.call.lock().unwrap_or_else(|e| e.into_inner());
        match c.as_ref() {
            Some(cur) if cur.same(h) => {
                *c = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn set_call(&self, h: Option<CallHandle>) {
        *self.call.lock().unwrap_or_else(|e| e.into_inner()) = h;
    }

    pub(crate) fn set_error(&self, e: impl Into<String>) {
        // What an upstream or its transport says can be long: keep what admin and logs show
        // small.
        let e = crate::text::cap_owned(e.into());
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = e;
    }

    pub(crate) fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why it takes no downstreams now, for `/readyz`.
    pub(crate) fn why_down(&self) -> String {
        let f = self.flags.load(Ordering::Acquire);
        let mut not = Vec::new();
        if f & STREAM == 0 {
            not.push("not connected");
        }
        if f & READY == 0 {
            not.push("not ready");
        }
        if f & LIVE == 0 {
            not.push("not live");
        }
        let e = self.last_error();
        if e.is_empty() {
            not.join(", ")
        } else {
            format!("{} ({e})", not.join(", "))
        }
    }

    pub fn view(&self) -> UpstreamView {
        let f = self.flags.load(Ordering::Acquire);
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UpstreamView {
            id: self.id.clone(),
            address: self.address.to_string(),
            ready: f & READY != 0,
            live: f & LIVE != 0,
            connected: f & STREAM != 0,
            state: if healthy(f) { "up" } else { "down" },
            downstreams: self.downstreams.load(Ordering::Relaxed),
            messages_in: get(&s.msgs_in),
            messages_out: get(&s.msgs_out),
            bytes_in: get(&s.bytes_in),
            bytes_out: get(&s.bytes_out),
            failures: get(&s.failures),
            last_error: self.last_error(),
        }
    }
}

fn healthy(f: u8) -> bool {
    f & (READY | LIVE | STREAM | REMOVED) == READY | LIVE | STREAM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_all_three_flags_and_reports_changes_once() {
        let addr = "grpc://127.0.0.1:1".parse().unwrap();
        let u = Upstream::new("u1".into(), addr, true);
        assert!(!u.healthy());
        assert_eq!(u.set(Flag::Stream, true), None);
        assert_eq!(u.set(Flag::Ready, true), None);
        assert_eq!(u.set(Flag::Live, true), Some(true));
        assert_eq!(u.set(Flag::Live, true), None);
        assert!(u.healthy());
        assert_eq!(u.set(Flag::Ready, false), Some(false));
        assert_eq!(u.set(Flag::Ready, false), None);
        assert!(u.why_down().contains("not ready"), "{}", u.why_down());
        u.set(Flag::Ready, true);
        assert!(u.mark_removed());
        assert!(!u.healthy());
    }

    #[test]
    fn a_stale_call_cannot_drop_the_current_one() {
        let u = Upstream::new("u1".into(), "grpc://127.0.0.1:1".parse().unwrap(), true);
        let handle = || crate::queue::call_queue().0;
        let (old, new) = (handle(), handle());
        u.set_call(Some(new.clone()));
        assert!(!u.drop_call(&old));
        assert!(u.call().is_some());
        assert!(u.drop_call(&new));
        assert!(u.call().is_none());
    }
}
