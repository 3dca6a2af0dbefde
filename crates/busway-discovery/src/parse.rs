//! Reading a record out of etcd. Anything under the prefix may have been written by anyone with
//! access to etcd, so a value is hostile until it has passed every rule here: a record that
//! fails one is ignored, never half-used (CONTRACT 6, "Watching").

use busway_config::Address;

use crate::record::{record_key, NodeRecord};

/// The largest value read as a record. A real record is well under 2 KiB; the cap is checked
/// before the JSON parser sees a byte, so a huge value costs nothing but its transfer.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The largest key looked at. etcd allows keys of up to 1.5 MiB; a record's key is the prefix,
/// a namespace and a name, so anything longer cannot match and is not copied into log lines.
pub const MAX_KEY_BYTES: usize = 1024;

/// The most characters of record-supplied text (a parser message quoting the value, an
/// address) kept in a [`Rejected`]: a writer must not be able to fill the logs.
const DETAIL: usize = 128;

/// Why a record in etcd was ignored. [`Rejected::label`] is the `reason` label of
/// `busway_discovery_rejected_total`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not JSON, a field missing or of the wrong type, or larger than [`MAX_RECORD_BYTES`].
    #[error("does not parse: {0}")]
    Parse(String),
    /// The key is not `PREFIX/nodes/NAMESPACE/NAME` of the record's own `namespace` and `name`
    /// (which is how one node would claim another's name), or those are not valid names.
    #[error("the key does not match the record's namespace and name")]
    Key,
    /// A `bus` URL or a gateway `address` that is not a `tcp://` or `unix://` URL.
    #[error("{0:?} is not a tcp:// or unix:// URL")]
    Address(String),
}

impl Rejected {
    /// Every reason, in the order [`crate::Discovery::rejected`] reports them.
    pub const REASONS: [&'static str; 3] = ["parse", "key", "address"];

    /// The metric label: `parse`, `key` or `address`.
    pub fn label(&self) -> &'static str {
        match self {
            Rejected::Parse(_) => "parse",
            Rejected::Key => "key",
            Rejected::Address(_) => "address",
        }
    }
}

/// The record stored at `key`, if it passes every rule: at most [`MAX_RECORD_BYTES`], every
/// field present and of its type, the key that of its own namespace and name, and only
/// `tcp://`/`unix://` addresses a node can dial.
///
/// Fields this version does not know are ignored rather than refused, so that a newer busway
/// can add one without every older watcher dropping its record.
pub fn parse_record(prefix: &str, key: &str, value: &[u8]) -> Result<NodeRecord, Rejected> {
    if value.len() > MAX_RECORD_BYTES {
        return Err(Rejected::Parse(format!(
            "{} bytes, more than the {} KiB a record may have",
            value.len(),
            MAX_RECORD_BYTES / 1024
        )));
    }
    let record: NodeRecord =
        serde_json::from_slice(value).map_err(|e| Rejected::Parse(cap(&e.to_string())))?;
    let names_valid = busway_config::validate_name(&record.namespace).is_ok()
        && busway_config::validate_name(&record.name).is_ok();
    if !names_valid || key != record_key(prefix, &record.namespace, &record.name) {
        return Err(Rejected::Key);
    }
    let addresses = record
        .bus
        .iter()
        .chain(record.gateways.iter().map(|g| &g.address));
    for a in addresses {
        if !dialable(a) {
            return Err(Rejected::Address(cap(a)));
        }
    }
    Ok(record)
}

/// A `tcp://HOST:PORT` or `unix:///path` URL, by the config's own parser (so what passes here
/// is exactly what a node can dial).
fn dialable(url: &str) -> bool {
    matches!(
        url.parse::<Address>(),
        Ok(Address::Tcp { .. } | Address::Unix(_))
    )
}

/// `s` cut to [`DETAIL`] characters, at a character boundary.
pub(crate) fn cap(s: &str) -> String {
    match s.char_indices().nth(DETAIL) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

#[cfg(test)]
mod tests;
