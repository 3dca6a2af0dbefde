//! The keys and values of the etcd election, under `PREFIX/cluster/ID/`:
//!
//! - `owner`: `{"name": NODE}`, created by the member that wins, bound to its lease;
//! - `members/NAME`: `{"name", "priority", "bus", "incarnation"}`, each member's record, bound
//!   to the same lease, so a member's death takes its record and (if it owned) the key in one
//!   revision.
//!
//! The cluster ID is the service address as `[cluster]` normalises it (`198.18.0.100/24`), as
//! the multicast adverts carry it: members that share an address are one cluster.

use busway_cluster::lease::{Holder, Peer};
use serde::{Deserialize, Serialize};

use crate::etcd::KeyValue;

/// The election's keys for one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// `PREFIX/cluster/ID/`: everything watched.
    pub root: String,
    /// `PREFIX/cluster/ID/owner`
    pub owner: String,
    /// `PREFIX/cluster/ID/members/NAME` of this node.
    pub me: String,
}

impl Keys {
    pub fn new(prefix: &str, cluster_id: &str, node: &str) -> Keys {
        let root = format!("{}/cluster/{cluster_id}/", prefix.trim_end_matches('/'));
        Keys {
            owner: format!("{root}owner"),
            me: format!("{root}members/{node}"),
            root,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OwnerValue {
    name: String,
}

#[derive(Serialize, Deserialize)]
struct PeerValue {
    name: String,
    priority: u32,
    bus: String,
    incarnation: u32,
}

pub(crate) fn owner_value(node: &str) -> Vec<u8> {
    serde_json::to_vec(&OwnerValue { name: node.into() }).unwrap_or_default()
}

pub(crate) fn peer_value(p: &Peer) -> Vec<u8> {
    serde_json::to_vec(&PeerValue {
        name: p.name.clone(),
        priority: p.priority,
        bus: p.bus.clone(),
        incarnation: p.incarnation,
    })
    .unwrap_or_default()
}

/// What one key under the root is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Owner(Option<Holder>),
    Member(Peer),
    MemberGone(String),
    /// Not a key of the election, or a value that does not parse: ignored (and said once by
    /// the caller). A broken owner value still counts as held, so nobody claims over it.
    Other(String),
}

/// A key-value read or watched under `keys.root`; `deleted` for a delete event.
pub(crate) fn entry(keys: &Keys, kv: &KeyValue, deleted: bool) -> Entry {
    let Some(rest) = kv
        .key
        .strip_prefix(keys.root.as_bytes())
        .and_then(|k| std::str::from_utf8(k).ok())
    else {
        return Entry::Other("a key outside the election".into());
    };
    if rest == "owner" {
        if deleted {
            return Entry::Owner(None);
        }
        let name = serde_json::from_slice::<OwnerValue>(&kv.value)
            .map(|v| v.name)
            .unwrap_or_else(|_| "(unreadable)".into());
        return Entry::Owner(Some(Holder {
            name,
            lease: kv.lease,
        }));
    }
    let Some(name) = rest.strip_prefix("members/") else {
        return Entry::Other(format!("an unknown key {rest:?}"));
    };
    if deleted {
        return Entry::MemberGone(name.to_string());
    }
    match serde_json::from_slice::<PeerValue>(&kv.value) {
        Ok(v) if v.name == name => Entry::Member(Peer {
            name: v.name,
            priority: v.priority,
            bus: v.bus,
            incarnation: v.incarnation,
        }),
        Ok(v) => Entry::Other(format!("member record {name:?} names {:?}", v.name)),
        Err(e) => Entry::Other(format!("member record {name:?} does not parse: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8], lease: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            lease,
            ..KeyValue::default()
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        let k = Keys::new("/busway/", "198.18.0.100/24", "m1");
        assert_eq!(k.owner, "/busway/cluster/198.18.0.100/24/owner");
        assert_eq!(k.me, "/busway/cluster/198.18.0.100/24/members/m1");
        let p = Peer {
            name: "m1".into(),
            priority: 300,
            bus: "tcp://198.18.0.11:7100".into(),
            incarnation: 2,
        };
        assert_eq!(
            entry(&k, &kv(&k.me, &peer_value(&p), 5), false),
            Entry::Member(p)
        );
        assert_eq!(
            entry(&k, &kv(&k.owner, &owner_value("m1"), 5), false),
            Entry::Owner(Some(Holder {
                name: "m1".into(),
                lease: 5
            }))
        );
        assert_eq!(entry(&k, &kv(&k.owner, b"", 0), true), Entry::Owner(None));
        assert_eq!(
            entry(&k, &kv(&k.me, b"", 0), true),
            Entry::MemberGone("m1".into())
        );
    }

    #[test]
    fn broken_records_are_other_and_a_broken_owner_still_holds() {
        let k = Keys::new("/busway", "198.18.0.100/24", "m1");
        assert!(matches!(
            entry(&k, &kv(&k.me, b"{", 1), false),
            Entry::Other(_)
        ));
        let forged = br#"{"name":"m2","priority":1,"bus":"","incarnation":1}"#;
        assert!(matches!(
            entry(&k, &kv(&k.me, forged, 1), false),
            Entry::Other(_)
        ));
        assert!(matches!(
            entry(&k, &kv(&k.owner, b"junk", 3), false),
            Entry::Owner(Some(Holder { lease: 3, .. }))
        ));
        assert!(matches!(
            entry(&k, &kv("/elsewhere", b"", 0), false),
            Entry::Other(_)
        ));
    }
}
