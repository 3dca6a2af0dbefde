//! The TOML file of CONTRACT section 3: `[admin]`, `[bus]`, `[dns]`; `[node]` is read by
//! `toml_node` and `[[service]]` by `toml_service`.

use std::net::SocketAddr;

use toml::de::DeTable;

use crate::defaults::{self, MIN_SECRET_LEN};
use crate::error::ConfigError;
use crate::model::{AdminConfig, BusConfig, BusListener, DnsConfig, NodeConfig, Secret};
use crate::secret::resolve_secret;
use crate::toml_cluster::cluster;
use crate::toml_discovery::discovery;
use crate::toml_node::node;
use crate::toml_relay::{gateways, relay};
use crate::toml_service::services;
use crate::toml_syntax::syntax_error;
use crate::toml_table::{Source, Table};
use crate::toml_tls::{tls, TlsSection};
use crate::unsupported;
use crate::validate;

type Res<T> = Result<T, ConfigError>;

/// Looks environment variables up for `env:NAME` secrets.
pub(crate) type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

const SECTIONS: &[&str] = &[
    "node",
    "admin",
    "bus",
    "dns",
    "discovery",
    "gateway",
    "relay",
    "cluster",
    "service",
];

/// Parses a whole file, reading `env:` secrets through `env`.
pub(crate) fn parse(text: &str, file: &str, env: Env<'_>) -> Res<NodeConfig> {
    let src = Source::new(file, text);
    let doc = DeTable::parse(text).map_err(|e| syntax_error(&src, &e))?;
    let root = Table::root(&src, &doc);
    top_level_keys(&root)?;
    let node = node(&root)?;
    let cfg = NodeConfig {
        cluster: cluster(&root, &node, env)?,
        node,
        admin: admin(&root, env)?,
        bus: bus(&root, env)?,
        dns: dns(&root)?,
        discovery: discovery(&root)?,
        gateways: gateways(&root)?,
        relay: relay(&root)?,
        services: services(&root)?,
    };
    bus_tls_needs(&root, &cfg)?;
    crate::toml_cluster::mdns_needs(&root, &cfg)?;
    Ok(cfg)
}

/// What `[bus.tls]` needs given the rest of the file: a certificate on a node that listens, and
/// CAs on a node that dials (a dialled peer's certificate is always verified).
fn bus_tls_needs(root: &Table<'_, '_>, cfg: &NodeConfig) -> Res<()> {
    let Some(tls) = &cfg.bus.tls else {
        return Ok(());
    };
    let Some(t) = root
        .table("bus")?
        .map(|b| b.table("tls"))
        .transpose()?
        .flatten()
    else {
        return Ok(());
    };
    if tls.cert.is_none() && !cfg.bus.listen.is_empty() {
        return Err(t.err_here(
            "cert",
            "missing key `cert` (and `key`): this node has bus listeners, which present a certificate",
        ));
    }
    let dials = cfg
        .services
        .iter()
        .any(|s| matches!(s.targets, crate::model::Targets::Peers(_)));
    if tls.ca.is_none() && dials {
        return Err(t.err_here(
            "ca",
            "missing key `ca`: this node dials peers, whose certificates are verified against it",
        ));
    }
    Ok(())
}

/// Unknown and not-yet-supported sections, in the order they are written.
fn top_level_keys(root: &Table<'_, '_>) -> Res<()> {
    for (name, span, _) in root.entries() {
        if unsupported::SECTIONS.contains(&name) {
            return Err(unsupported::section(
                root.src.file,
                name,
                Some(root.src.line(span.start)),
            ));
        }
        if !SECTIONS.contains(&name) {
            // Reports this key: it is the first unknown one in file order.
            return root.deny_unknown(SECTIONS);
        }
    }
    Ok(())
}

fn admin(root: &Table<'_, '_>, env: Env<'_>) -> Res<Option<AdminConfig>> {
    let Some(t) = root.table("admin")? else {
        return Ok(None);
    };
    t.deny_unknown(&["listen", "token", "tls"])?;
    let listen = t.address("listen")?.ok_or_else(|| {
        t.err_here(
            "listen",
            "missing key `listen` (leave [admin] out for no admin server)",
        )
    })?;
    validate::admin_listener(t.src.file, &listen)?;
    Ok(Some(AdminConfig {
        listen: listen.value,
        token: secret(&t, "token", env)?,
        tls: tls(&t, TlsSection::Admin)?,
    }))
}

fn secret(t: &Table<'_, '_>, name: &str, env: Env<'_>) -> Res<Option<Secret>> {
    let Some(raw) = t.string(name)? else {
        return Ok(None);
    };
    resolve_secret(&raw.value, env)
        .map(Some)
        .map_err(|e| ConfigError::new(t.src.file, raw.line, &raw.key, e))
}

fn bus(root: &Table<'_, '_>, env: Env<'_>) -> Res<BusConfig> {
    let mut bus = defaults::bus();
    let Some(t) = root.table("bus")? else {
        return Ok(bus);
    };
    t.deny_unknown(&[
        "listen",
        "secret",
        "connections_per_peer",
        "multilink",
        "anonymous",
        "token",
        "resumption",
        "handshake_timeout",
        "max_transports",
        "tls",
    ])?;
    if let Some((_, listen)) = t.addresses("listen")? {
        for l in &listen {
            validate::bus_listener(t.src.file, l)?;
        }
        bus.listen = listen
            .into_iter()
            .map(|l| BusListener {
                address: l.value,
                service: None,
            })
            .collect();
    }
    if let Some((list, items)) = t.string_or_strings("secret")? {
        let mut secrets = Vec::with_capacity(items.len());
        for item in items {
            let s = resolve_secret(&item.value, env)
                .and_then(long_enough)
                .map_err(|e| ConfigError::new(t.src.file, item.line, &item.key, e))?;
            secrets.push(s);
        }
        let mut secrets = secrets.into_iter();
        bus.secret = Some(secrets.next().ok_or_else(|| {
            ConfigError::new(
                t.src.file,
                list.line,
                &list.key,
                "an empty list: leave `secret` out to run unauthenticated",
            )
        })?);
        bus.also_accepted = secrets.collect();
    }
    if let Some(n) = t.integer("connections_per_peer")? {
        let max = defaults::MAX_CONNECTIONS_PER_PEER;
        bus.connections_per_peer = u32::try_from(n.value)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    t.src.file,
                    n.line,
                    &n.key,
                    format!("must be between 1 and {max}, got {}", n.value),
                )
            })?;
    }
    if let Some(b) = t.boolean("multilink")? {
        bus.multilink = b.value;
    }
    if let Some(b) = t.boolean("anonymous")? {
        bus.anonymous = b.value;
    }
    bus.token = secret(&t, "token", env)?;
    if let Some(b) = t.boolean("resumption")? {
        bus.resumption = b.value;
    }
    if let Some(d) = t.positive_duration("handshake_timeout")? {
        bus.handshake_timeout = d.value;
    }
    if let Some(n) = t.integer("max_transports")? {
        bus.max_transports = u32::try_from(n.value)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ConfigError::new(
                    t.src.file,
                    n.line,
                    &n.key,
                    format!("must be between 1 and {}, got {}", u32::MAX, n.value),
                )
            })?;
    }
    bus.tls = tls(&t, TlsSection::Bus)?;
    Ok(bus)
}

/// CONTRACT section 10: a bus secret of fewer than 16 bytes is refused. The message says how to
/// make a good one and never shows the value.
fn long_enough(s: Secret) -> Result<Secret, String> {
    let len = s.expose().len();
    if len < MIN_SECRET_LEN {
        return Err(format!(
            "a bus secret needs at least {MIN_SECRET_LEN} bytes, this one has {len} (`busway gen-secret` prints a good one)"
        ));
    }
    Ok(s)
}

fn dns(root: &Table<'_, '_>) -> Res<DnsConfig> {
    let mut dns = defaults::dns();
    let Some(t) = root.table("dns")? else {
        return Ok(dns);
    };
    t.deny_unknown(&["servers", "min_ttl"])?;
    if let Some((_, servers)) = t.strings("servers")? {
        for s in servers {
            let addr = s.value.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    t.src.file,
                    s.line,
                    &s.key,
                    format!(
                        "invalid name server \"{}\", expected IP:PORT such as \"127.0.0.1:53\" or \"[::1]:53\"",
                        s.value
                    ),
                )
            })?;
            dns.servers.push(addr);
        }
    }
    if let Some(d) = t.duration("min_ttl")? {
        dns.min_ttl = d.value;
    }
    Ok(dns)
}
