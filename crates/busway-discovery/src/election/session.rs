//! The election's task: sessions until stopped. A session is one connection: keep the lease
//! (reusing it while etcd still has it), write this member's record under it, read every key
//! of the election at one revision, then watch from the next one and renew the lease every
//! quarter TTL. Any failure ends the session with [`Seen::Down`]; the next starts after a
//! backoff of 100 ms doubling to 1 s, short because an owner's lease is running out meanwhile.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use busway_cluster::lease::{Seen, MAX_TTL};
use busway_net::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout};

use super::records::{entry, owner_value, peer_value, Entry};
use super::{Ask, ElectionSettings};
use crate::calls::{describe, Etcd, Fail, Lease, CALL};
use crate::etcd::ops::{always, delete, lease_is, mod_revision_is, put, txn};
use crate::etcd::WatchResponse;

const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

type Stop = oneshot::Receiver<oneshot::Sender<()>>;

pub(super) struct Task {
    s: ElectionSettings,
    seen: mpsc::UnboundedSender<Seen>,
    asks: mpsc::UnboundedReceiver<Ask>,
    /// The lease in use or last used, and what etcd granted it.
    held: Option<(i64, i64)>,
    next: usize,
    backoff: Backoff,
    /// etcd granted more than asked once already (said once).
    said_ttl: bool,
}

/// How a session ended.
enum End {
    Stopped,
    Failed(Fail),
}

impl Task {
    pub(super) fn new(
        s: ElectionSettings,
        seen: mpsc::UnboundedSender<Seen>,
        asks: mpsc::UnboundedReceiver<Ask>,
    ) -> Task {
        Task {
            s,
            seen,
            asks,
            held: None,
            next: 0,
            backoff: Backoff::new(BACKOFF.0, BACKOFF.1),
            said_ttl: false,
        }
    }

    pub(super) async fn run(mut self, mut stop: Stop) {
        loop {
            let end = tokio::select! {
                s = self.connect() => match s {
                    Ok((etcd, lease, rev)) => self.serve(etcd, lease, rev, &mut stop).await,
                    Err(f) => End::Failed(f),
                },
                done = &mut stop => {
                    // Not connected: the lease, if any, lapses by itself.
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            };
            match end {
                End::Stopped => return,
                End::Failed(f) => {
                    tracing::warn!(error = %f, "cluster: etcd session ended; the election waits for etcd");
                    let _ = self.seen.send(Seen::Down);
                }
            }
            // Asks made while down are void: the machine asks again on the next snapshot.
            while self.asks.try_recv().is_ok() {}
            tokio::select! {
                _ = sleep(self.backoff.next_delay()) => {}
                done = &mut stop => {
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    /// The endpoints in turn, from the one that last worked: a session that has its lease, its
    /// record and its snapshot; and the snapshot's revision.
    async fn connect(&mut self) -> Result<(Etcd, Lease, i64), Fail> {
        let n = self.s.endpoints.len();
        let mut last = Fail::Down("no etcd endpoint".into());
        for i in 0..n {
            let at = (self.next + i) % n;
            let endpoint = self.s.endpoints[at].clone();
            match self.connect_to(&endpoint).await {
                Ok(s) => {
                    self.next = at;
                    self.backoff.reset();
                    return Ok(s);
                }
                Err(f) => last = f,
            }
        }
        self.next = (self.next + 1) % n.max(1);
        Err(last)
    }

    async fn connect_to(&mut self, endpoint: &str) -> Result<(Etcd, Lease, i64), Fail> {
        let mut etcd = Etcd::connect(endpoint).await?;
        let asked = i64::try_from(self.s.lease_ttl.as_secs()).unwrap_or(i64::MAX);
        // Before the grant or keepalive: etcd starts the TTL when it gets the request, later.
        let sent = Instant::now();
        let lease = etcd.lease(self.held, asked).await?;
        self.held = Some((lease.id, lease.ttl));
        if lease.ttl > asked && !self.said_ttl {
            self.said_ttl = true;
            tracing::warn!(
                asked,
                granted = lease.ttl,
                "cluster: etcd granted a longer lease than lease_ttl (its minimum follows its election timeout); takeovers take that much longer"
            );
        }
        self.renewed(lease.id, sent, lease.ttl);
        let record = put(&self.s.keys.me, &peer_value(&self.s.me), lease.id);
        etcd.txn(always(record)).await?;
        let (kvs, rev) = etcd.snapshot(&self.s.keys.root).await?;
        let (mut owner, mut members) = (None, Vec::new());
        for kv in &kvs {
            match entry(&self.s.keys, kv, false) {
                Entry::Owner(h) => owner = h,
                Entry::Member(p) => members.push(p),
                Entry::MemberGone(_) => {}
                Entry::Other(why) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "cluster: etcd key ignored: {why}")
                }
            }
        }
        let _ = self.seen.send(Seen::Snapshot { owner, members });
        Ok((etcd, lease, rev))
    }

    fn renewed(&self, lease: i64, sent: Instant, ttl: i64) {
        let ttl = Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
        let _ = self.seen.send(Seen::Renewed { lease, sent, ttl });
    }

    /// A session until it fails or is stopped.
    async fn serve(&mut self, mut etcd: Etcd, mut lease: Lease, rev: i64, stop: &mut Stop) -> End {
        let mut watch = match etcd.watch(&self.s.keys.root, rev + 1).await {
            Ok(w) => w,
            Err(f) => return End::Failed(f),
        };
        // Clamped as the machine clamps it: a broken answer must not overflow the timer.
        let secs = u64::try_from(lease.ttl)
            .unwrap_or(1)
            .clamp(1, MAX_TTL.as_secs());
        let ttl = Duration::from_secs(secs);
        let mut tick = tokio::time::interval(ttl / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When each keepalive still unanswered was sent: etcd answers them in order.
        let mut pending: VecDeque<Instant> = VecDeque::new();
        loop {
            let step: Result<(), Fail> = tokio::select! {
                _ = tick.tick() => {
                    if pending.front().is_some_and(|t| t.elapsed() > ttl) {
                        Err(Fail::Down(format!("etcd {}: no keepalive answer for {} s", etcd.endpoint, ttl.as_secs())))
                    } else {
                        pending.push_back(Instant::now());
                        lease.keeper.keep_alive().await.map_err(|e| Fail::Down(describe(&etcd.endpoint, &e)))
                    }
                }
                a = lease.answers.message() => match a {
                    Ok(Some(a)) if a.ttl > 0 => {
                        // The first answer of the stream was the one `lease` awaited.
                        if let Some(sent) = pending.pop_front() {
                            self.renewed(lease.id, sent, a.ttl);
                        }
                        Ok(())
                    }
                    Ok(Some(_)) => {
                        self.held = None;
                        Err(Fail::Down(format!("etcd {}: the lease expired", etcd.endpoint)))
                    }
                    Ok(None) => Err(Fail::Down(format!("etcd {}: the lease keepalive stream ended", etcd.endpoint))),
                    Err(e) => Err(Fail::Down(describe(&etcd.endpoint, &e))),
                },
                m = watch.message() => match m {
                    Ok(Some(resp)) => self.on_watch(&etcd.endpoint, resp),
                    Ok(None) => Err(Fail::Down(format!("etcd {}: the watch stream ended", etcd.endpoint))),
                    Err(e) => Err(Fail::Down(describe(&etcd.endpoint, &e))),
                },
                ask = self.asks.recv() => match ask {
                    Some(Ask::Claim) => {
                        let owner = &self.s.keys.owner;
                        let create = txn(mod_revision_is(owner, 0), put(owner, &owner_value(&self.s.me.name), lease.id));
                        etcd.txn(create).await.map(|won| {
                            let _ = self.seen.send(Seen::Claimed { won });
                        })
                    }
                    Some(Ask::Resign) => {
                        let owner = &self.s.keys.owner;
                        etcd.txn(txn(lease_is(owner, lease.id), delete(owner))).await.map(|_| ())
                    }
                    None => return End::Stopped,
                },
                done = &mut *stop => {
                    if let Ok(done) = done {
                        // One revision deletes the key (if held) and the record.
                        let _ = timeout(CALL, etcd.revoke(lease.id)).await;
                        let _ = done.send(());
                    }
                    return End::Stopped;
                }
            };
            if let Err(f) = step {
                return End::Failed(f);
            }
        }
    }

    /// Watch events as [`Seen`]s. A canceled watch (a compaction) ends the session: the next
    /// one reads a fresh snapshot under the same lease.
    fn on_watch(&self, endpoint: &str, resp: WatchResponse) -> Result<(), Fail> {
        if resp.canceled {
            return Err(Fail::Down(format!(
                "etcd {endpoint}: the election's watch was canceled ({})",
                crate::parse::cap(&resp.cancel_reason)
            )));
        }
        for ev in &resp.events {
            let Some(kv) = &ev.kv else { continue };
            // A delete carries only the key and its revision: version 0 (as in discovery).
            let seen = match entry(&self.s.keys, kv, kv.version == 0) {
                Entry::Owner(h) => Seen::Owner(h),
                Entry::Member(p) => Seen::MemberUp(p),
                Entry::MemberGone(n) => Seen::MemberDown(n),
                Entry::Other(why) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "cluster: etcd key ignored: {why}");
                    continue;
                }
            };
            let _ = self.seen.send(seen);
        }
        Ok(())
    }
}
