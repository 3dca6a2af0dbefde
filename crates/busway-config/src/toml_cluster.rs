//! `[cluster]` of the TOML file (CONTRACT section 7): the LAN cluster that shares one service
//! address.
//!
//! Every value is checked here, where the error can name its line, so that the runtime never
//! meets an interface name the kernel refuses or an advert interval the state machine cannot
//! run with.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::defaults::MIN_SECRET_LEN;
use crate::error::ConfigError;
use crate::model::{Address, ClusterBackend, ClusterConfig, NodeConfig, NodeSection};
use crate::secret::resolve_secret;
use crate::toml_file::Env;
use crate::toml_table::Table;

type Res<T> = Result<T, ConfigError>;

const DEFAULT_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 1), 7946);
const DEFAULT_PRIORITY: u32 = 100;
const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_millis(200);
const DEFAULT_DEAD_AFTER: u32 = 3;
/// The bounds busway-cluster accepts (its `MIN_ADVERT_INTERVAL` and `MAX_ADVERT_INTERVAL`):
/// shorter floods the LAN and the probes' spacing goes below a millisecond, longer makes a
/// takeover take most of a minute.
const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
const MAX_ADVERT_INTERVAL: Duration = Duration::from_secs(10);
const MAX_DEAD_AFTER: i64 = 100;
/// Linux's IFNAMSIZ less the terminating NUL.
const MAX_INTERFACE: usize = 15;
/// Node names travel in every advert, whose name fields hold at most this many bytes.
const MAX_NODE_NAME: usize = 64;

const KEYS: &[&str] = &[
    "interface",
    "service_ip",
    "group",
    "priority",
    "advert_interval",
    "dead_after",
    "secret",
    "mdns",
    "lan_balance",
    "backend",
];

/// `[cluster]`, or `None` when absent.
pub(crate) fn cluster(
    root: &Table<'_, '_>,
    node: &NodeSection,
    env: Env<'_>,
) -> Res<Option<ClusterConfig>> {
    let Some(t) = root.table("cluster")? else {
        return Ok(None);
    };
    t.deny_unknown(KEYS)?;
    let file = t.src.file;
    let at = |line, key: &str, msg: String| ConfigError::new(file, line, key, msg);

    let interface = t.required_string("interface")?;
    interface_name(&interface.value).map_err(|e| at(interface.line, &interface.key, e))?;

    let service_ip = t.string("service_ip")?.ok_or_else(|| {
        t.err_here(
            "service_ip",
            "missing key `service_ip`: the shared address, such as \"198.18.0.100/24\"",
        )
    })?;
    let (ip, prefix_len) =
        parse_service_ip(&service_ip.value).map_err(|e| at(service_ip.line, &service_ip.key, e))?;

    let group = match t.string("group")? {
        None => DEFAULT_GROUP,
        Some(g) => parse_group(&g.value).map_err(|e| at(g.line, &g.key, e))?,
    };

    let priority = match t.integer("priority")? {
        None => DEFAULT_PRIORITY,
        Some(p) => u32::try_from(p.value).map_err(|_| {
            at(
                p.line,
                &p.key,
                format!("`priority` must be between 0 and {}", u32::MAX),
            )
        })?,
    };

    let advert_interval = match t.duration("advert_interval")? {
        None => DEFAULT_ADVERT_INTERVAL,
        Some(d) if (MIN_ADVERT_INTERVAL..=MAX_ADVERT_INTERVAL).contains(&d.value) => d.value,
        Some(d) => {
            return Err(at(
                d.line,
                &d.key,
                "`advert_interval` must be between 10ms and 10s".into(),
            ))
        }
    };

    let dead_after = match t.integer("dead_after")? {
        None => DEFAULT_DEAD_AFTER,
        Some(n) if (1..=MAX_DEAD_AFTER).contains(&n.value) => n.value as u32,
        Some(n) => {
            return Err(at(
                n.line,
                &n.key,
                format!(
                    "`dead_after` must be between 1 and {MAX_DEAD_AFTER}, got {}",
                    n.value
                ),
            ))
        }
    };

    let secret = t.string("secret")?.ok_or_else(|| {
        t.err_here(
            "secret",
            "missing key `secret`: adverts are signed with it, such as \"env:BUSWAY_CLUSTER_SECRET\"",
        )
    })?;
    let secret = resolve_secret(&secret.value, env)
        .and_then(|s| {
            let len = s.expose().len();
            if len < MIN_SECRET_LEN {
                return Err(format!(
                    "a cluster secret needs at least {MIN_SECRET_LEN} bytes, this one has {len} (`busway gen-secret` prints a good one)"
                ));
            }
            Ok(s)
        })
        .map_err(|e| at(secret.line, &secret.key, e))?;

    let mdns = t.boolean("mdns")?.is_some_and(|b| b.value);
    let lan_balance = t.boolean("lan_balance")?.filter(|b| b.value);
    let backend = match t.string("backend")? {
        None => ClusterBackend::Multicast,
        Some(b) => match b.value.as_str() {
            "multicast" => ClusterBackend::Multicast,
            // The election runs in `[discovery]`'s etcd, under its prefix and lease_ttl.
            "etcd" if root.table("discovery")?.is_none() => {
                return Err(at(
                    b.line,
                    &b.key,
                    "`backend = \"etcd\"` elects the owner through an etcd lease: it needs a [discovery] section naming the etcd endpoints".into(),
                ))
            }
            "etcd" => ClusterBackend::Etcd,
            other => {
                return Err(at(
                    b.line,
                    &b.key,
                    format!("invalid backend \"{other}\", expected multicast or etcd"),
                ))
            }
        },
    };

    if let Some(b) = lan_balance
        .as_ref()
        .filter(|_| backend == ClusterBackend::Etcd)
    {
        return Err(at(
            b.line,
            &b.key,
            "`lan_balance = true` picks members from the multicast membership; with `backend = \"etcd\"` there is none (use backend = \"multicast\")".into(),
        ));
    }
    let lan_balance = lan_balance.is_some();

    if node.name.len() > MAX_NODE_NAME {
        return Err(ConfigError::new(
            file,
            Some(t.line()),
            "cluster",
            format!(
                "a cluster member's node name is at most {MAX_NODE_NAME} bytes (node.name has {})",
                node.name.len()
            ),
        ));
    }

    Ok(Some(ClusterConfig {
        interface: interface.value,
        service_ip: ip,
        prefix_len,
        group,
        priority,
        advert_interval,
        dead_after,
        secret,
        mdns,
        lan_balance,
        backend,
    }))
}

/// `mdns = true` advertises the node's bus port, so the node needs a `tcp://` bus listener
/// (a Unix socket has no port to put in an SRV record). Checked once `[bus]` is read.
pub(crate) fn mdns_needs(root: &Table<'_, '_>, cfg: &NodeConfig) -> Res<()> {
    if !cfg.cluster.as_ref().is_some_and(|c| c.mdns) {
        return Ok(());
    }
    let tcp = cfg
        .bus
        .listen
        .iter()
        .any(|l| matches!(l.address, Address::Tcp { .. }));
    if tcp {
        return Ok(());
    }
    let at = root
        .table("cluster")?
        .map(|t| t.boolean("mdns"))
        .transpose()?
        .flatten();
    Err(ConfigError::new(
        root.src.file,
        at.as_ref().and_then(|b| b.line),
        at.as_ref().map_or("cluster.mdns", |b| b.key.as_str()),
        "`mdns = true` advertises the bus port: it needs a tcp:// address in bus.listen",
    ))
}

/// A name Linux accepts for an interface.
fn interface_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_INTERFACE {
        return Err(format!(
            "invalid interface \"{s}\": an interface name is 1 to {MAX_INTERFACE} bytes"
        ));
    }
    if s == "."
        || s == ".."
        || s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "invalid interface \"{s}\": no '/', ':' or spaces, and not . or .."
        ));
    }
    Ok(())
}

/// `A.B.C.D/N`, or `A.B.C.D` for `/32`: a unicast IPv4 address a host can hold.
pub(crate) fn parse_service_ip(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || {
        format!("invalid service_ip \"{s}\", expected an IPv4 address with its prefix such as \"198.18.0.100/24\"")
    };
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u8>().map_err(|_| bad())?),
        None => (s, 32),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    if !(1..=32).contains(&len) {
        return Err(format!(
            "invalid service_ip \"{s}\": the prefix length must be 1 to 32"
        ));
    }
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!(
            "invalid service_ip \"{s}\": a service address is a unicast address, not unspecified, loopback, multicast or broadcast"
        ));
    }
    Ok((ip, len))
}

/// `A.B.C.D:PORT` with a multicast address and a port.
fn parse_group(s: &str) -> Result<SocketAddrV4, String> {
    let g: SocketAddrV4 = s.parse().map_err(|_| {
        format!("invalid group \"{s}\", expected a multicast IPv4 address and port such as \"239.255.77.1:7946\"")
    })?;
    if !g.ip().is_multicast() {
        return Err(format!(
            "invalid group \"{s}\": {} is not a multicast address (224.0.0.0/4)",
            g.ip()
        ));
    }
    if g.port() == 0 {
        return Err(format!("invalid group \"{s}\": the port cannot be 0"));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_addresses() {
        assert_eq!(
            parse_service_ip("198.18.0.100/24").unwrap(),
            (Ipv4Addr::new(198, 18, 0, 100), 24)
        );
        assert_eq!(parse_service_ip("198.18.0.100").unwrap().1, 32);
        for bad in [
            "198.18.0.100/0",
            "198.18.0.100/33",
            "0.0.0.0/8",
            "127.0.0.1/8",
            "239.1.1.1/32",
            "::1/128",
            "x/24",
            "198.18.0.100/",
        ] {
            assert!(parse_service_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_are_multicast() {
        assert_eq!(parse_group("239.255.77.1:7946").unwrap(), DEFAULT_GROUP);
        assert!(parse_group("198.18.0.1:7946")
            .unwrap_err()
            .contains("not a multicast"));
        assert!(parse_group("239.255.77.1:0").unwrap_err().contains("port"));
        assert!(parse_group("239.255.77.1").is_err());
    }

    #[test]
    fn interface_names() {
        assert!(interface_name("eth0").is_ok());
        assert!(interface_name("veth-m1.100").is_ok());
        for bad in ["", "a-very-long-interface", "a/b", "a b", "..", "eth0:1"] {
            assert!(interface_name(bad).is_err(), "{bad:?}");
        }
    }
}
