//! The etcd calls discovery makes, each bounded in time, each failure turned into one line an
//! operator can read (`etcd http://…: connection refused`).
//!
//! Every call has its own deadline because a gRPC call to an etcd that accepted the connection
//! and then stopped answering (a member partitioned from its cluster, a paused process) would
//! otherwise wait forever; HTTP/2 pings catch a dead connection under the long-lived streams.

use std::future::Future;
use std::time::Duration;

use tokio::time::timeout;
use tonic::Code;

use crate::etcd::ops::{delete, get, lease_is, mod_revision_is, put, txn};
use crate::etcd::{
    Client, Error as EtcdError, KeepAlives, KeyValue, LeaseKeeper, Options, RangeRequest,
    TxnRequest, WatchCreateRequest, WatchStream,
};
use crate::holder::{judge, running, Holder};
use crate::parse::cap;
use crate::record::Host;

/// The most one unary call may take.
pub(crate) const CALL: Duration = Duration::from_secs(2);
/// The most a TCP connect to one endpoint may take before the next endpoint is tried.
const CONNECT: Duration = Duration::from_secs(1);
/// HTTP/2 ping interval and timeout: a silent connection is given up within about 8 s. The
/// interval stays above etcd's default `--grpc-keepalive-min-time` of 5 s: pinged more often
/// while etcd has nothing to send (a long lease's keepalives are rare), etcd counts each ping a
/// strike and closes the connection at the third ("too many pings"), every 8 s or so.
const PING: (Duration, Duration) = (Duration::from_secs(6), Duration::from_secs(2));
/// The largest gRPC message accepted from etcd. etcd refuses values over its
/// `--max-request-bytes` (1.5 MiB by default), so one record always fits; a snapshot page that
/// does not is fetched again in smaller pages.
pub(crate) const MAX_MESSAGE: usize = 32 << 20;
/// Records per snapshot page, at first.
const PAGE: i64 = 512;
/// How every connection to etcd is made.
const OPTIONS: Options = Options {
    connect_timeout: CONNECT,
    ping_interval: PING.0,
    ping_timeout: PING.1,
    max_message: MAX_MESSAGE,
};

/// Why a step did not work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// etcd did not answer, or answered with an error: try again, another endpoint, later.
    Down(String),
    /// Another live process holds this node's key.
    Conflict { key: String, holder: String },
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Down(why) => f.write_str(why),
            Fail::Conflict { key, holder } => {
                write!(f, "{key} is held by another live process ({holder})")
            }
        }
    }
}

/// A lease being kept alive.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: i64,
    /// What etcd granted, in seconds (at least what was asked).
    pub(crate) ttl: i64,
    pub(crate) keeper: LeaseKeeper,
    pub(crate) answers: KeepAlives,
}

/// One connection to one etcd endpoint.
pub(crate) struct Etcd {
    client: Client,
    pub(crate) endpoint: String,
}

impl Etcd {
    pub(crate) async fn connect(endpoint: &str) -> Result<Etcd, Fail> {
        let client = call(endpoint, Client::connect(endpoint, OPTIONS)).await?;
        Ok(Etcd {
            client,
            endpoint: endpoint.to_string(),
        })
    }

    /// Keeps `held` alive if etcd still has it, else grants a new lease of `ttl` seconds.
    /// `ttl_held` is what etcd granted `held`.
    pub(crate) async fn lease(
        &mut self,
        held: Option<(i64, i64)>,
        ttl: i64,
    ) -> Result<Lease, Fail> {
        if let Some((id, granted)) = held {
            match timeout(CALL, self.client.lease_keep_alive(id)).await {
                Ok(Ok((keeper, answers))) => {
                    return Ok(Lease {
                        id,
                        ttl: granted,
                        keeper,
                        answers,
                    })
                }
                // Lapsed while etcd could not be reached: a new one is needed.
                Ok(Err(EtcdError::LeaseNotFound)) => {}
                Ok(Err(e)) => return Err(self.down(&e)),
                Err(_) => return Err(self.silent()),
            }
        }
        let granted = call(&self.endpoint, self.client.lease_grant(ttl)).await?;
        let (id, ttl) = (granted.id, granted.ttl.max(1));
        let (keeper, answers) = call(&self.endpoint, self.client.lease_keep_alive(id)).await?;
        Ok(Lease {
            id,
            ttl,
            keeper,
            answers,
        })
    }

    /// Writes this node's record at `key` under `lease`, unless another live process holds the
    /// key (see [`judge`]). The write is a transaction on the key's modification revision as
    /// read just before, so a record written in between by anyone is never overwritten
    /// unseen: it is judged again. Returns the revision of the write.
    pub(crate) async fn register(
        &mut self,
        key: &str,
        value: &[u8],
        lease: i64,
        leases: &[i64],
        me: &Host,
    ) -> Result<i64, Fail> {
        for _ in 0..3 {
            let found = call(&self.endpoint, self.client.range(get(key))).await?;
            let (rev, holder) = match found.kvs.first() {
                None => (0, Holder::Free),
                Some(kv) => (
                    kv.mod_revision,
                    judge(&kv.value, kv.lease, leases, me, running),
                ),
            };
            match holder {
                Holder::Live(holder) => {
                    return Err(Fail::Conflict {
                        key: key.to_string(),
                        holder,
                    })
                }
                Holder::Stale(what) => {
                    tracing::info!(key, holder = %what, "discovery: replacing a record of no live process");
                }
                Holder::Free => {}
            }
            let write = txn(mod_revision_is(key, rev), put(key, value, lease));
            let done = call(&self.endpoint, self.client.txn(write)).await?;
            if done.succeeded {
                return Ok(done.header.map_or(0, |h| h.revision));
            }
        }
        Err(Fail::Down(format!(
            "etcd {}: {key} changed under every attempt to register",
            self.endpoint
        )))
    }

    /// Rewrites the record if the key is still under `lease`; `Ok(false)` when it is not (it
    /// was deleted or taken), and the caller registers again.
    pub(crate) async fn reput(
        &mut self,
        key: &str,
        value: &[u8],
        lease: i64,
    ) -> Result<bool, Fail> {
        let write = txn(lease_is(key, lease), put(key, value, lease));
        Ok(call(&self.endpoint, self.client.txn(write))
            .await?
            .succeeded)
    }

    /// Runs the transaction `t`: whether its comparisons held (and so its writes were made).
    pub(crate) async fn txn(&mut self, t: TxnRequest) -> Result<bool, Fail> {
        Ok(call(&self.endpoint, self.client.txn(t)).await?.succeeded)
    }

    /// Every key-value under `prefix`, at one revision, in pages; and that revision.
    pub(crate) async fn snapshot(&mut self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Fail> {
        let end = prefix_end(prefix);
        let (mut from, mut rev, mut page) = (prefix.as_bytes().to_vec(), 0, PAGE);
        let mut all = Vec::new();
        loop {
            let read = RangeRequest {
                key: from.clone(),
                range_end: end.clone(),
                limit: page,
                revision: rev,
                ..RangeRequest::default()
            };
            let got = match timeout(CALL, self.client.range(read)).await {
                Ok(Ok(got)) => got,
                Ok(Err(e)) if too_large(&e) && page > 1 => {
                    page = (page / 8).max(1);
                    continue;
                }
                Ok(Err(e)) => return Err(self.down(&e)),
                Err(_) => return Err(self.silent()),
            };
            if rev == 0 {
                rev = got.header.map_or(0, |h| h.revision);
            }
            if let Some(last) = got.kvs.last() {
                from = last.key.clone();
                from.push(0);
            }
            all.extend(got.kvs);
            if !got.more {
                return Ok((all, rev));
            }
        }
    }

    /// Whether etcd still has its history from `rev` on, so that a watch from `rev + 1`
    /// resumes without a gap: not when it was compacted away, nor when etcd has no such
    /// revision (a new cluster where the old one was). Asked before resuming, because a
    /// watch on compacted history is first created and only then canceled, and discovery
    /// must not say it is up on a view that is about to be reset.
    pub(crate) async fn has_history(&mut self, key: &str, rev: i64) -> Result<bool, Fail> {
        let read = RangeRequest {
            revision: rev,
            count_only: true,
            ..get(key)
        };
        match timeout(CALL, self.client.range(read)).await {
            Ok(Ok(_)) => Ok(true),
            // "required revision has been compacted" or "is a future revision".
            Ok(Err(EtcdError::Status(s))) if s.code() == Code::OutOfRange => Ok(false),
            Ok(Err(e)) => Err(self.down(&e)),
            Err(_) => Err(self.silent()),
        }
    }

    /// A watch on `prefix` from revision `from` on.
    pub(crate) async fn watch(&mut self, prefix: &str, from: i64) -> Result<WatchStream, Fail> {
        let create = WatchCreateRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix),
            start_revision: from,
            ..WatchCreateRequest::default()
        };
        call(&self.endpoint, self.client.watch(create)).await
    }

    /// Deletes the record if it is still under `lease`, then revokes the lease. Best effort,
    /// each step bounded: an etcd that does not answer lets the lease lapse instead.
    pub(crate) async fn withdraw(&mut self, key: &str, lease: i64) {
        let del = txn(lease_is(key, lease), delete(key));
        if let Err(Fail::Down(e)) = call(&self.endpoint, self.client.txn(del)).await {
            tracing::warn!(key, error = %e, "discovery: record not deleted; it goes with its lease");
        }
        self.revoke(lease).await;
    }

    /// Revokes `lease` (and with it every key under it). Best effort, bounded.
    pub(crate) async fn revoke(&mut self, lease: i64) {
        revoke(&mut self.client, &self.endpoint, lease).await;
    }

    /// [`Etcd::revoke`] in a task of its own, for a caller that must not wait.
    pub(crate) fn revoke_soon(&self, lease: i64) {
        let (mut client, endpoint) = (self.client.clone(), self.endpoint.clone());
        tokio::spawn(async move { revoke(&mut client, &endpoint, lease).await });
    }

    fn down(&self, e: &EtcdError) -> Fail {
        Fail::Down(describe(&self.endpoint, e))
    }

    fn silent(&self) -> Fail {
        silent(&self.endpoint)
    }
}

async fn revoke(client: &mut Client, endpoint: &str, lease: i64) {
    if let Err(Fail::Down(e)) = call(endpoint, client.lease_revoke(lease)).await {
        tracing::warn!(lease, error = %e, "discovery: lease not revoked; it lapses after its TTL");
    }
}

/// `fut` within [`CALL`], its error described.
async fn call<T>(
    endpoint: &str,
    fut: impl Future<Output = Result<T, EtcdError>>,
) -> Result<T, Fail> {
    match timeout(CALL, fut).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Fail::Down(describe(endpoint, &e))),
        Err(_) => Err(silent(endpoint)),
    }
}

fn silent(endpoint: &str) -> Fail {
    Fail::Down(format!(
        "etcd {endpoint}: no answer within {} s",
        CALL.as_secs()
    ))
}

/// The first key after every key that starts with `prefix` (etcd's "range end" of a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes (or nothing): every key from the prefix on.
    vec![0]
}

/// A reply larger than [`MAX_MESSAGE`] (tonic refuses to decode it).
fn too_large(e: &EtcdError) -> bool {
    matches!(e, EtcdError::Status(s)
        if matches!(s.code(), Code::OutOfRange | Code::ResourceExhausted))
}

/// `etcd ENDPOINT: WHAT`, with WHAT the innermost cause in a few words.
pub(crate) fn describe(endpoint: &str, e: &EtcdError) -> String {
    // A status's message is often only the outer layer ("tcp connect error"); the OS error
    // is at the end of its sources.
    let (mut what, mut inner): (String, Option<&dyn std::error::Error>) = match e {
        EtcdError::Status(s) => (s.message().to_string(), std::error::Error::source(s)),
        EtcdError::Transport(t) => (t.to_string(), std::error::Error::source(t)),
        other => (other.to_string(), None),
    };
    while let Some(next) = inner {
        what = next.to_string();
        inner = next.source();
    }
    let lower = what.to_ascii_lowercase();
    let what = if lower.contains("connection refused") {
        "connection refused".to_string()
    } else if lower.contains("connection reset") {
        "connection reset".to_string()
    } else {
        cap(&what)
    };
    format!("etcd {endpoint}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end("/busway/nodes/"), b"/busway/nodes0");
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80");
        assert_eq!(prefix_end(""), b"\0");
    }

    #[test]
    fn errors_read_as_one_short_line() {
        let e = EtcdError::Status(tonic::Status::unavailable(
            "tcp connect error: Connection refused (os error 111)",
        ));
        assert_eq!(
            describe("http://127.0.0.1:1", &e),
            "etcd http://127.0.0.1:1: connection refused"
        );
        let e = EtcdError::Status(tonic::Status::unavailable("x".repeat(1000)));
        assert!(describe("e", &e).len() < 200);
    }
}
