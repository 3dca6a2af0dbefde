//! The one task that talks to etcd for a node: it connects (endpoints in turn), keeps the lease
//! alive, keeps the record written, and turns the watch into the view and its updates.
//!
//! Its life is a loop of sessions. A session is one connection: register (reusing the lease if
//! etcd still has it), sync the view (resume the watch where the view left off, or take a
//! fresh snapshot when that history is gone), then serve until something fails. A failure
//! marks discovery down, keeps the view as it was, and waits a jittered backoff before the
//! next session. The backoff stops at 3 s (3.75 s with its jitter) so that a node is
//! registered and watching again within the contract's 5 s of etcd answering.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_net::Backoff;
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep, timeout};

use crate::calls::{describe, Etcd, Fail, Lease, CALL};
use crate::etcd::{KeyValue, WatchResponse, WatchStream};
use crate::parse::cap;
use crate::record::{nodes_prefix, NodeRecord};
use crate::settings::Settings;
use crate::shared::Shared;
use crate::view::{Kv, Nodes};

/// Backoff between sessions: 100 ms doubling to 3 s.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3));
/// The most leases remembered as this node's own (see `holder::judge`).
const LEASES_KEPT: usize = 8;
/// The most a clean shutdown spends deleting the record and revoking the lease.
pub(crate) const WITHDRAW: Duration = Duration::from_secs(2);

/// How the handle asks for a clean stop: the task answers once the record is withdrawn.
pub(crate) type Stop = oneshot::Receiver<oneshot::Sender<()>>;

/// A connection that has registered this node.
pub(crate) struct Session {
    etcd: Etcd,
    lease: Lease,
    /// The revision of the registration's write.
    registered: i64,
    /// The watch, once the view is synced.
    watch: Option<WatchStream>,
}

/// How a session ended.
enum End {
    Stopped,
    Failed(Fail),
}

pub(crate) struct Driver {
    pub(crate) shared: Arc<Shared>,
    settings: Settings,
    /// `PREFIX/nodes/`
    prefix: String,
    nodes: Nodes,
    records: watch::Receiver<NodeRecord>,
    /// The lease in use or last used, and the TTL etcd granted it.
    held: Option<(i64, i64)>,
    /// This node's leases, newest last.
    leases: Vec<i64>,
    /// The endpoint the next session tries first: the one that last worked.
    next: usize,
    backoff: Backoff,
    /// The next sync takes a fresh snapshot instead of resuming the watch.
    resnapshot: bool,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        settings: Settings,
        nodes: Nodes,
        records: watch::Receiver<NodeRecord>,
    ) -> Driver {
        Driver {
            shared,
            prefix: nodes_prefix(&settings.prefix),
            settings,
            nodes,
            records,
            held: None,
            leases: Vec::new(),
            next: 0,
            backoff: Backoff::new(BACKOFF.0, BACKOFF.1),
            resnapshot: false,
        }
    }

    /// Sessions until stopped. `first` is the session `start` already set up, if any.
    pub(crate) async fn run(mut self, mut first: Option<Session>, mut stop: Stop) {
        loop {
            let end = match first.take() {
                Some(s) => self.serve(s, &mut stop).await,
                None => {
                    tokio::select! {
                        s = self.connect() => match s {
                            Ok(s) => self.serve(s, &mut stop).await,
                            Err(f) => End::Failed(f),
                        },
                        done = &mut stop => return self.stop_between(done).await,
                    }
                }
            };
            match end {
                End::Stopped => return,
                End::Failed(f) => self.shared.down(&f.to_string()),
            }
            // The backoff; a record changed meanwhile is in the view at once all the same.
            let wake = sleep(self.backoff.next_delay());
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    changed = self.records.changed() => match changed {
                        Ok(()) => self.take_record(),
                        Err(_) => return,
                    },
                    done = &mut stop => return self.stop_between(done).await,
                }
            }
        }
    }

    /// A record given to `set_record` and not yet seen: into the view (and so into the next
    /// write to etcd).
    fn take_record(&mut self) {
        let record = self.records.borrow_and_update().clone();
        if let Some(u) = self.nodes.set_own(record) {
            self.shared.publish(&self.nodes, vec![u]);
        }
    }

    /// A stop between sessions. The record may still be in etcd (etcd came back while this
    /// node waited out its backoff), so one quick try to withdraw it, then the answer. A
    /// handle dropped without `shutdown` gets neither, as after a crash.
    async fn stop_between(&mut self, done: Result<oneshot::Sender<()>, oneshot::error::RecvError>) {
        let Ok(done) = done else { return };
        if let Some((lease, _)) = self.held {
            let key = self.nodes.own_key().to_string();
            let endpoints = self.settings.endpoints.clone();
            let _ = timeout(WITHDRAW, async {
                for ep in &endpoints {
                    if let Ok(mut etcd) = Etcd::connect(ep).await {
                        etcd.withdraw(&key, lease).await;
                        return;
                    }
                }
            })
            .await;
        }
        let _ = done.send(());
    }

    /// One session: the endpoints in turn, from the one that last worked, until one registers
    /// this node and syncs the view. A conflict ends the search: every endpoint would say the
    /// same.
    pub(crate) async fn connect(&mut self) -> Result<Session, Fail> {
        let n = self.settings.endpoints.len();
        let mut last = Fail::Down("no etcd endpoint".to_string());
        for i in 0..n {
            let at = (self.next + i) % n;
            let endpoint = self.settings.endpoints[at].clone();
            match self.connect_to(&endpoint).await {
                Ok(s) => {
                    self.next = at;
                    return Ok(s);
                }
                Err(f @ Fail::Conflict { .. }) => return Err(f),
                Err(f) => last = f,
            }
        }
        // Start the next round one further on, so a member that hangs is not always first.
        self.next = (self.next + 1) % n;
        Err(last)
    }

    async fn connect_to(&mut self, endpoint: &str) -> Result<Session, Fail> {
        let mut etcd = Etcd::connect(endpoint).await?;
        let lease = etcd.lease(self.held, self.settings.ttl_secs()).await?;
        if self.held.map(|(id, _)| id) != Some(lease.id) {
            if let Some((old, _)) = self.held {
                tracing::info!(
                    old,
                    new = lease.id,
                    "discovery: the lease lapsed; registering under a new one"
                );
            }
            self.leases.push(lease.id);
            if self.leases.len() > LEASES_KEPT {
                self.leases.remove(0);
            }
        }
        self.held = Some((lease.id, lease.ttl));
        if self.records.has_changed().unwrap_or(false) {
            self.take_record();
        }
        let registered = match self.register(&mut etcd, lease.id).await {
            Ok(rev) => rev,
            Err(f @ Fail::Conflict { .. }) => {
                // Nothing of this node's is left in etcd: a refused node leaves no lease
                // behind, and the next attempt takes a new one.
                // In the background: the conflict is the answer, and must not wait on it.
                etcd.revoke_soon(lease.id);
                self.held = None;
                return Err(f);
            }
            Err(f) => return Err(f),
        };
        let mut s = Session {
            etcd,
            lease,
            registered,
            watch: None,
        };
        s.watch = Some(self.sync(&mut s.etcd, s.registered, s.lease.id).await?);
        self.shared.live(endpoint);
        self.backoff.reset();
        Ok(s)
    }

    async fn register(&self, etcd: &mut Etcd, lease: i64) -> Result<i64, Fail> {
        let own = self.nodes.own();
        let key = self.nodes.own_key();
        etcd.register(key, &own.to_json(), lease, &self.leases, &own.host)
            .await
    }

    /// Brings the view up to date and returns the watch that keeps it so: resumed from the
    /// view's revision where etcd still has that history, else after a fresh snapshot (a
    /// [`crate::Update::Reset`]).
    async fn sync(
        &mut self,
        etcd: &mut Etcd,
        registered: i64,
        lease: i64,
    ) -> Result<WatchStream, Fail> {
        // etcd's revisions went back (a new cluster, a restore from a backup): the view's
        // revision means nothing there.
        if registered > 0 && registered < self.nodes.revision() {
            self.resnapshot = true;
        }
        // A compaction between a snapshot and its watch sends us round again; three rounds
        // in a row mean something else is wrong.
        let rev = self.nodes.revision();
        if !self.resnapshot && rev > 0 && !etcd.has_history(self.nodes.own_key(), rev).await? {
            tracing::info!(
                from = rev + 1,
                "discovery: etcd no longer has the watch's history; taking a fresh snapshot"
            );
            self.resnapshot = true;
        }
        for _ in 0..3 {
            if self.resnapshot || self.nodes.revision() == 0 {
                let (kvs, rev) = etcd.snapshot(&self.prefix).await?;
                let reset = self
                    .nodes
                    .snapshot(kvs.iter().map(kv), rev, &self.shared.counts);
                self.shared.publish(&self.nodes, vec![reset]);
                // Deleted or taken between the registration and the snapshot: the watch
                // starts after that, so it would never say.
                let own = self.nodes.own_key().as_bytes();
                if !kvs.iter().any(|e| e.key == own && e.lease == lease) {
                    self.register(etcd, lease).await?;
                }
                self.resnapshot = false;
            }
            let mut w = etcd.watch(&self.prefix, self.nodes.revision() + 1).await?;
            let first = match timeout(CALL, w.message()).await {
                Ok(Ok(Some(first))) => first,
                Ok(Ok(None)) => return Err(closed(&etcd.endpoint, "watch")),
                Ok(Err(e)) => return Err(Fail::Down(describe(&etcd.endpoint, &e))),
                Err(_) => return Err(closed(&etcd.endpoint, "watch (no answer)")),
            };
            if first.canceled && first.compact_revision > 0 {
                tracing::info!(
                    from = self.nodes.revision() + 1,
                    compacted = first.compact_revision,
                    "discovery: the watch's history is compacted; taking a fresh snapshot"
                );
                self.resnapshot = true;
                continue;
            }
            if first.canceled || !first.created {
                return Err(canceled(&etcd.endpoint, &first));
            }
            return Ok(w);
        }
        Err(Fail::Down(format!(
            "etcd {}: compacted under every snapshot",
            etcd.endpoint
        )))
    }

    /// A registered session until it fails or the handle asks to stop.
    async fn serve(&mut self, mut s: Session, stop: &mut Stop) -> End {
        let mut watch = match s.watch.take() {
            Some(w) => w,
            None => match self.sync(&mut s.etcd, s.registered, s.lease.id).await {
                Ok(w) => w,
                Err(f) => return End::Failed(f),
            },
        };
        self.shared.live(&s.etcd.endpoint);
        let ttl = Duration::from_secs(u64::try_from(s.lease.ttl).unwrap_or(1));
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut answered = Instant::now();
        loop {
            let step = tokio::select! {
                _ = tick.tick() => self.keep_alive(&mut s, answered, ttl).await,
                a = s.lease.answers.message() => match a {
                    Ok(Some(a)) if a.ttl > 0 => {
                        answered = Instant::now();
                        Ok(None)
                    }
                    Ok(Some(_)) => {
                        self.held = None;
                        Err(Fail::Down(format!("etcd {}: the lease expired", s.etcd.endpoint)))
                    }
                    Ok(None) => Err(closed(&s.etcd.endpoint, "lease keepalive")),
                    Err(e) => Err(Fail::Down(describe(&s.etcd.endpoint, &e))),
                },
                m = watch.message() => match m {
                    Ok(Some(resp)) => self.on_watch(&mut s, resp).await,
                    Ok(None) => Err(closed(&s.etcd.endpoint, "watch")),
                    Err(e) => Err(Fail::Down(describe(&s.etcd.endpoint, &e))),
                },
                changed = self.records.changed() => match changed {
                    Ok(()) => self.on_record(&mut s).await.map(|()| None),
                    // The handle is gone without a shutdown: stop as a crash would.
                    Err(_) => return End::Stopped,
                },
                done = &mut *stop => {
                    if let Ok(done) = done {
                        let key = self.nodes.own_key().to_string();
                        let _ = timeout(WITHDRAW, s.etcd.withdraw(&key, s.lease.id)).await;
                        self.shared.up.store(false, Ordering::Relaxed);
                        let _ = done.send(());
                    }
                    return End::Stopped;
                }
            };
            match step {
                Ok(Some(w)) => watch = w,
                Ok(None) => {}
                Err(f) => return End::Failed(f),
            }
        }
    }

    async fn keep_alive(
        &mut self,
        s: &mut Session,
        answered: Instant,
        ttl: Duration,
    ) -> Result<Option<WatchStream>, Fail> {
        if answered.elapsed() > ttl {
            return Err(Fail::Down(format!(
                "etcd {}: no keepalive answer for {} s",
                s.etcd.endpoint,
                ttl.as_secs()
            )));
        }
        s.lease
            .keeper
            .keep_alive()
            .await
            .map_err(|e| Fail::Down(describe(&s.etcd.endpoint, &e)))?;
        Ok(None)
    }

    /// A watch answer: events into the view, or a fresh snapshot after a compaction.
    async fn on_watch(
        &mut self,
        s: &mut Session,
        resp: WatchResponse,
    ) -> Result<Option<WatchStream>, Fail> {
        if resp.canceled {
            if resp.compact_revision > 0 {
                tracing::info!(
                    compacted = resp.compact_revision,
                    "discovery: the watch fell behind a compaction; taking a fresh snapshot"
                );
                self.resnapshot = true;
                return self.sync(&mut s.etcd, 0, s.lease.id).await.map(Some);
            }
            return Err(canceled(&s.etcd.endpoint, &resp));
        }
        let own_key = self.nodes.own_key().as_bytes().to_vec();
        let (mut updates, mut last, mut own_touched) = (Vec::new(), 0, false);
        for ev in &resp.events {
            let Some(e) = &ev.kv else { continue };
            last = last.max(e.mod_revision);
            // A delete event carries only the key and its revision, so its version is 0; a put
            // always has version 1 or more. (That holds for any event type, even one a newer
            // etcd might add; the type field is not read.)
            let deleted = e.version == 0;
            if e.key == own_key {
                own_touched |= deleted || e.lease != s.lease.id;
                continue;
            }
            let u = if deleted {
                self.nodes.delete(&e.key)
            } else {
                self.nodes.put(kv(e), &self.shared.counts)
            };
            updates.extend(u);
        }
        self.nodes.seen(last);
        self.shared.publish(&self.nodes, updates);
        if own_touched {
            tracing::warn!(
                key = self.nodes.own_key(),
                "discovery: this node's record was deleted or overwritten by someone else; registering again"
            );
            s.registered = self.register(&mut s.etcd, s.lease.id).await?;
        }
        Ok(None)
    }

    /// The handle's `set_record`: the view at once, etcd under the same lease.
    async fn on_record(&mut self, s: &mut Session) -> Result<(), Fail> {
        self.take_record();
        let (key, value) = (self.nodes.own_key(), self.nodes.own().to_json());
        if !s.etcd.reput(key, &value, s.lease.id).await? {
            s.registered = self.register(&mut s.etcd, s.lease.id).await?;
        }
        Ok(())
    }
}

fn kv(e: &KeyValue) -> Kv<'_> {
    Kv {
        key: &e.key,
        value: &e.value,
        mod_revision: e.mod_revision,
    }
}

fn closed(endpoint: &str, what: &str) -> Fail {
    Fail::Down(format!("etcd {endpoint}: the {what} stream ended"))
}

fn canceled(endpoint: &str, r: &WatchResponse) -> Fail {
    Fail::Down(format!(
        "etcd {endpoint}: watch canceled: {}",
        cap(&r.cancel_reason)
    ))
}
