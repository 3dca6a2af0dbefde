//! The node record of CONTRACT 6, as it is written to etcd: JSON under
//! `PREFIX/nodes/NAMESPACE/NAME`.
//!
//! Every field is always written, `{}`/`[]`/`null` included, so that a reader in any language
//! can tell "none" from "an older writer that did not know the field". The reading side
//! ([`crate::parse_record`]) holds records to the same rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// One node as it registers itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub namespace: String,
    /// The busway release, as `busway --version` prints it.
    pub version: String,
    pub labels: BTreeMap<String, String>,
    /// From `[node] annotations`: free text for people and tools, never used for routing.
    pub annotations: BTreeMap<String, String>,
    pub host: Host,
    /// The bound bus listen URLs, with their real ports (`tcp://` or `unix://`).
    pub bus: Vec<String>,
    /// The services this node serves as egress.
    pub services: Vec<String>,
    /// How nodes of other namespaces reach this one.
    pub gateways: Vec<Gateway>,
    /// True when this node carries sessions on for others.
    pub relay: bool,
    /// The relay this node recommends to reach it; `null` when none. Present even when null:
    /// see [`required`].
    #[serde(deserialize_with = "required")]
    pub advertise_relay: Option<AdvertiseRelay>,
}

/// Which process wrote a record: what decides whether a record found at start is live
/// (docs/DISCOVERY.md, "Conflicts").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    pub pid: u32,
}

impl Host {
    /// This process: the host name from `/proc/sys/kernel/hostname` (as the config's default
    /// node name) and its pid.
    pub fn this_process() -> Host {
        Host {
            hostname: busway_config::hostname(),
            pid: std::process::id(),
        }
    }
}

/// `[[gateway]]`: an address that nodes outside the namespace dial, lowest `priority` first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub address: String,
    pub priority: u32,
    /// Only for dialing nodes whose metadata contain all of these (`{}`: every node).
    #[serde(rename = "match")]
    pub r#match: BTreeMap<String, String>,
}

/// `[relay] advertise`: the labels of the relays that can reach this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertiseRelay {
    pub labels: BTreeMap<String, String>,
    /// A relay's node name, where one is preferred. Optional in the record (the contract: "a
    /// `name` may be added"), so left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Serde treats a missing `Option` field as `None`; a field with its own `deserialize_with`
/// loses that leniency, so `advertise_relay` must be present (as `null` or an object), like
/// every other field.
fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// The folder every record lives in: `PREFIX/nodes/`. A trailing `/` on the prefix is dropped,
/// so `/busway` and `/busway/` name the same keys.
pub fn nodes_prefix(prefix: &str) -> String {
    format!("{}/nodes/", prefix.trim_end_matches('/'))
}

/// Where a node's record lives: `PREFIX/nodes/NAMESPACE/NAME`.
pub fn record_key(prefix: &str, namespace: &str, name: &str) -> String {
    format!("{}{namespace}/{name}", nodes_prefix(prefix))
}

impl NodeRecord {
    /// The JSON written to etcd. Serializing these types cannot fail (string keys only), so a
    /// failure would be a bug; it is still not a panic: the empty object is what gets written,
    /// and every reader rejects it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_slash_between_parts_whatever_the_prefix() {
        assert_eq!(record_key("/busway", "edge", "n1"), "/busway/nodes/edge/n1");
        assert_eq!(
            record_key("/busway/", "edge", "n1"),
            "/busway/nodes/edge/n1"
        );
        assert_eq!(record_key("", "default", "a"), "/nodes/default/a");
        assert_eq!(nodes_prefix("/x//"), "/x/nodes/");
    }

    #[test]
    fn every_field_is_written_even_when_empty() {
        let r = NodeRecord {
            name: "n".into(),
            namespace: "default".into(),
            version: "0.1.0".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            host: Host {
                hostname: "h".into(),
                pid: 7,
            },
            bus: vec![],
            services: vec![],
            gateways: vec![],
            relay: false,
            advertise_relay: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "advertise_relay",
                "annotations",
                "bus",
                "gateways",
                "host",
                "labels",
                "name",
                "namespace",
                "relay",
                "services",
                "version"
            ]
        );
        assert!(v["advertise_relay"].is_null());
        assert_eq!(v["labels"], serde_json::json!({}));
    }

    #[test]
    fn gateway_match_is_spelled_match() {
        let g = Gateway {
            address: "tcp://1.2.3.4:5".into(),
            priority: 10,
            r#match: [("namespace".to_string(), "edge".to_string())].into(),
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"address":"tcp://1.2.3.4:5","priority":10,"match":{"namespace":"edge"}}"#
        );
    }
}
