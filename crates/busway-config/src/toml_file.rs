//! The TOML file of CONTRACT section 3: `[admin]`, `[bus]`, `[dns]`; `[node]` is read by
//! `toml_node` and `[[service]]` by `toml_service`.

use std::net::SocketAddr;

use toml::de::DeTable;

use crate::defaults;
use crate::error::ConfigError;
use crate::model::{AdminConfig, BusConfig, BusListener, DnsConfig, NodeConfig, Secret};
use crate::secret::resolve_secret;
use crate::toml_node::node;
use crate::toml_service::services;
use crate::toml_syntax::syntax_error;
use crate::toml_table::{Source, Table};
use crate::unsupported;
use crate::validate;

type Res<T> = Result<T, ConfigError>;

/// Looks environment variables up for `env:NAME` secrets.
pub(crate) type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

const SECTIONS: &[&str] = &["node", "admin", "bus", "dns", "service"];

/// Parses a whole file, reading `env:` secrets through `env`.
pub(crate) fn parse(text: &str, file: &str, env: Env<'_>) -> Res<NodeConfig> {
    let src = Source::new(file, text);
    let doc = DeTable::parse(text).map_err(|e| syntax_error(&src, &e))?;
    let root = Table::root(&src, &doc);
    top_level_keys(&root)?;
    Ok(NodeConfig {
        node: node(&root)?,
        admin: admin(&root, env)?,
        bus: bus(&root, env)?,
        dns: dns(&root)?,
        services: services(&root)?,
    })
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
    t.deny_unknown(&["listen", "token"])?;
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
    t.deny_unknown(&["listen", "secret", "connections_per_peer"])?;
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
    Ok(bus)
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
