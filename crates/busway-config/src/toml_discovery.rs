//! `[discovery]` of the TOML file (CONTRACT section 6), and the rule that ties `label:`
//! targets to it: a label selector stands for discovered nodes, so without a registry to
//! discover them it could only ever be empty.

use std::time::Duration;

use crate::draft::{ServiceDraft, TargetKind};
use crate::error::ConfigError;
use crate::model::{Address, DiscoveryConfig};
use crate::toml_table::Table;

type Res<T> = Result<T, ConfigError>;

const DEFAULT_PREFIX: &str = "/busway";
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// etcd refuses shorter leases than about its election timeout; a second is the least that is
/// ever meaningful, and the contract advises 5 s where leader elections happen.
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
/// etcd's own cap on a lease's TTL is far higher; a node record that outlives its node by more
/// than an hour would be a view no one should trust.
const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

pub(crate) fn discovery(root: &Table<'_, '_>) -> Res<Option<DiscoveryConfig>> {
    let Some(t) = root.table("discovery")? else {
        return Ok(None);
    };
    t.deny_unknown(&["etcd", "prefix", "lease_ttl"])?;
    let Some((at, endpoints)) = t.string_or_strings("etcd")? else {
        return Err(t.err_here(
            "etcd",
            "missing key `etcd`: the endpoints of the etcd cluster, such as [\"http://127.0.0.1:2379\"]",
        ));
    };
    if endpoints.is_empty() {
        return Err(ConfigError::new(
            t.src.file,
            at.line,
            &at.key,
            "`etcd` needs at least one endpoint",
        ));
    }
    let mut etcd = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        if let Err(why) = endpoint(&e.value) {
            return Err(ConfigError::new(t.src.file, e.line, &e.key, why));
        }
        etcd.push(e.value);
    }
    let mut prefix = DEFAULT_PREFIX.to_string();
    if let Some(p) = t.string("prefix")? {
        prefix = checked_prefix(&p.value)
            .map_err(|why| ConfigError::new(t.src.file, p.line, &p.key, why))?;
    }
    let mut lease_ttl = DEFAULT_LEASE_TTL;
    if let Some(d) = t.duration("lease_ttl")? {
        if d.value < MIN_LEASE_TTL || d.value > MAX_LEASE_TTL {
            return Err(ConfigError::new(
                t.src.file,
                d.line,
                &d.key,
                "`lease_ttl` must be between 1s and 1h (5s or more where etcd elects leaders)",
            ));
        }
        lease_ttl = d.value;
    }
    Ok(Some(DiscoveryConfig {
        etcd,
        prefix,
        lease_ttl,
    }))
}

/// `http://HOST:PORT`, as etcd clients are given endpoints. etcd over TLS (`https://`) is not
/// spoken yet: refused here, where the error can name the line, rather than at start.
fn endpoint(s: &str) -> Result<(), String> {
    if s.starts_with("https://") {
        return Err(format!(
            "etcd over TLS is not yet supported: \"{s}\" (use http://HOST:PORT)"
        ));
    }
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("invalid etcd endpoint \"{s}\", expected http://HOST:PORT"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let port_ok = rest
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || rest.contains('/') {
        return Err(format!(
            "invalid etcd endpoint \"{s}\", expected http://HOST:PORT"
        ));
    }
    Ok(())
}

/// A key prefix: starts with `/`, written without a trailing one (`/busway/` is `/busway`).
fn checked_prefix(p: &str) -> Result<String, String> {
    let trimmed = p.trim_end_matches('/');
    if !p.starts_with('/') || trimmed.is_empty() {
        return Err(format!(
            "invalid prefix \"{p}\", expected a key path such as \"/busway\""
        ));
    }
    if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a prefix cannot contain spaces or control characters".into());
    }
    Ok(trimmed.to_string())
}

/// `label:` targets: only as `peers` (they name nodes, reached over the bus), and only on a
/// node with `[discovery]`.
pub(crate) fn label_targets(file: &str, s: &ServiceDraft, discovery: bool) -> Res<()> {
    let Some(t) = first_label(s) else {
        return Ok(());
    };
    let why = if s.kind == TargetKind::Backends {
        "label: targets name busway nodes: list them in `peers`, not `backends`"
    } else if !discovery {
        "label: targets need [discovery], the registry that finds the nodes they select"
    } else {
        return Ok(());
    };
    Err(ConfigError::new(file, t.line, &t.key, why))
}

/// A Cloudbus INI file has no `[discovery]`: `label:` targets are refused there.
pub(crate) fn no_label_targets(file: &str, s: &ServiceDraft) -> Res<()> {
    match first_label(s) {
        Some(t) => Err(ConfigError::new(
            file,
            t.line,
            &t.key,
            "label: targets need [discovery], which only a TOML file can configure",
        )),
        None => Ok(()),
    }
}

fn first_label(s: &ServiceDraft) -> Option<&crate::draft::At<Address>> {
    s.targets
        .iter()
        .find(|t| matches!(t.value, Address::Label(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_with_a_port() {
        assert!(endpoint("http://127.0.0.1:2379").is_ok());
        assert!(endpoint("http://etcd.internal:2379/").is_ok());
        assert!(endpoint("https://etcd.internal:2379")
            .unwrap_err()
            .contains("not yet supported"));
        for bad in [
            "127.0.0.1:2379",
            "http://127.0.0.1",
            "http://:2379",
            "http://h:0",
            "http://h:2379/v3",
            "tcp://h:2379",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_key_paths() {
        assert_eq!(checked_prefix("/busway/").unwrap(), "/busway");
        assert_eq!(checked_prefix("/a/b").unwrap(), "/a/b");
        for bad in ["busway", "/", "", "/a b"] {
            assert!(checked_prefix(bad).is_err(), "{bad}");
        }
    }
}
