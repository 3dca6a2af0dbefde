//! Who holds this node's key, and whether it may be overwritten (CONTRACT 6: "A node refuses to
//! overwrite a live record of another process").
//!
//! A record under a lease is live as far as etcd knows — but etcd cannot tell a process that
//! died a second ago from one that runs, and after a crash the dead node's record stays until
//! its lease lapses. The one case this node can decide for itself is its own host: a record
//! naming this host and a pid that is not running here belongs to no live process.

use std::path::Path;

use serde::Deserialize;

use crate::parse::{cap, MAX_RECORD_BYTES};
use crate::record::Host;

/// What is at the key now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Nothing, or this node's record under one of its own leases: write it.
    Free,
    /// A record that belongs to no live process (or is not a record at all): replace it, and
    /// say so in the log.
    Stale(String),
    /// Another live process's record: leave it, and say whose (`HOSTNAME:PID`).
    Live(String),
}

/// Decides about `value` (under `lease`) found at this node's key. `leases` are this node's
/// own, the current one and those it held before (a record under one of them is its own from
/// before a reconnect); `running` says whether a pid of this host runs.
pub(crate) fn judge(
    value: &[u8],
    lease: i64,
    leases: &[i64],
    me: &Host,
    running: impl Fn(u32) -> bool,
) -> Holder {
    if lease != 0 && leases.contains(&lease) {
        return Holder::Free;
    }
    #[derive(Deserialize)]
    struct Only {
        host: Host,
    }
    // Only `host` is read: a record from a newer or older busway, or one with a bad address,
    // still names a process, and that process may be live.
    let host = if value.len() <= MAX_RECORD_BYTES {
        serde_json::from_slice::<Only>(value).ok().map(|o| o.host)
    } else {
        None
    };
    let Some(host) = host else {
        // Not a record of any process: every watcher ignores it too.
        return Holder::Stale("a value that is not a node record".to_string());
    };
    let holder = format!("{}:{}", cap(&host.hostname), host.pid);
    // The same host and pid under a lease that is not this node's: another Discovery of this
    // very process (tests do that), so live too.
    if host.hostname == me.hostname && host.pid != me.pid && !running(host.pid) {
        return Holder::Stale(holder);
    }
    Holder::Live(holder)
}

/// Whether `pid` is a running process of this host: its `/proc` entry exists. A zombie still
/// counts (it is not reaped yet), and a pid reused by an unrelated process counts too: both
/// err on the side of not overwriting.
pub(crate) fn running(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Host {
        Host {
            hostname: "h1".into(),
            pid: 100,
        }
    }

    fn value(hostname: &str, pid: u32) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"host": {"hostname": hostname, "pid": pid}}))
            .unwrap()
    }

    #[test]
    fn own_leases_are_free_whatever_the_value() {
        assert_eq!(judge(b"junk", 7, &[3, 7], &me(), |_| true), Holder::Free);
        // Lease 0 is "no lease", never one of ours.
        assert_eq!(
            judge(&value("h2", 1), 0, &[0], &me(), |_| true),
            Holder::Live("h2:1".into())
        );
    }

    #[test]
    fn a_dead_pid_of_this_host_is_stale_a_live_one_or_another_host_is_live() {
        let v = value("h1", 55);
        assert_eq!(
            judge(&v, 9, &[1], &me(), |_| false),
            Holder::Stale("h1:55".into())
        );
        assert_eq!(
            judge(&v, 9, &[1], &me(), |_| true),
            Holder::Live("h1:55".into())
        );
        // Another host: its pids cannot be checked from here.
        let v = value("h2", 55);
        assert_eq!(
            judge(&v, 9, &[1], &me(), |_| false),
            Holder::Live("h2:55".into())
        );
        // This very process under another lease: another instance, live.
        let v = value("h1", 100);
        assert_eq!(
            judge(&v, 9, &[1], &me(), |_| false),
            Holder::Live("h1:100".into())
        );
    }

    #[test]
    fn a_value_without_a_host_is_not_a_record_and_is_replaced() {
        for v in [&b"junk"[..], b"{}", br#"{"host":{"hostname":"h2"}}"#] {
            assert!(matches!(
                judge(v, 9, &[1], &me(), |_| true),
                Holder::Stale(_)
            ));
        }
        // A record that is otherwise bad still names its process.
        let v = br#"{"host":{"hostname":"h2","pid":3},"bus":["http://x:1"]}"#;
        assert_eq!(
            judge(v, 9, &[1], &me(), |_| true),
            Holder::Live("h2:3".into())
        );
    }

    #[test]
    fn running_reads_proc() {
        assert!(running(std::process::id()));
        assert!(!running(0));
        assert!(!running(u32::MAX));
    }
}
