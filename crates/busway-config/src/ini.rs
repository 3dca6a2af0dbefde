//! What a Cloudbus INI file means (CONTRACT section 4), for a controller or a segment.
//!
//! Each section but `[Cloudbus]` is one service. In a controller, `bind` is where its clients
//! connect and each `server` is a segment (a bus peer); in a segment, `bind` is a bus listener
//! pinned to that service and each `server` is a backend. `backend` is the same key as `server`
//! (Cloudbus 0.4 ships its own files with `backend=`), and the two may be mixed in one section.
//! Errors use the key path `SECTION.key`, with the section name as written and the key
//! lower-cased as written (`svc.backend` for a mistake on a `backend=` line).

use std::collections::HashMap;

use crate::defaults;
use crate::draft::{parse_address, At, ServiceDraft, TargetKind};
use crate::error::ConfigError;
use crate::ini_syntax::{sections, Section};
use crate::model::{Address, Balance, BusListener, Mode, NodeConfig, ServiceConfig};
use crate::validate;

/// Which Cloudbus program the INI file configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The ingress: clients connect to `bind`, sessions go to the segments listed as `server`.
    Controller,
    /// The egress: controllers connect to `bind`, sessions go to the backends listed as `server`.
    Segment,
}

type Res<T> = Result<T, ConfigError>;

/// Parses a Cloudbus INI file for `role`; node-level settings take their TOML defaults.
pub fn parse_ini(text: &str, file: &str, role: Role) -> Result<NodeConfig, ConfigError> {
    let mut bus = defaults::bus();
    let mut drafts = Vec::new();
    let mut binds: HashMap<Address, String> = HashMap::new();
    for section in sections(text, file)? {
        if section.name.eq_ignore_ascii_case("cloudbus") {
            cloudbus_section(file, &section)?;
            continue;
        }
        let (bind, draft) = service(file, &section, role)?;
        unique_bind(file, &bind, &section.name, &mut binds)?;
        match role {
            Role::Controller => drafts.push(ServiceDraft {
                listen: vec![bind],
                ..draft
            }),
            Role::Segment => {
                validate::bus_listener(file, &bind)?;
                bus.listen.push(BusListener {
                    address: bind.value,
                    service: Some(section.name.clone()),
                });
                drafts.push(draft);
            }
        }
    }
    validate::unique_service_names(file, &drafts)?;
    for d in &drafts {
        crate::toml_discovery::no_label_targets(file, d)?;
    }
    let services = drafts
        .into_iter()
        .map(|d| validate::finish_service(file, d))
        .collect::<Res<Vec<ServiceConfig>>>()?;
    Ok(NodeConfig {
        node: defaults::node_section(),
        admin: None,
        bus,
        dns: defaults::dns(),
        discovery: None,
        gateways: vec![],
        relay: Default::default(),
        cluster: None,
        services,
    })
}

/// busway reads no settings from `[Cloudbus]`; a key there would be silently ignored otherwise.
fn cloudbus_section(file: &str, section: &Section) -> Res<()> {
    match section.entries.first() {
        Some(e) => Err(ConfigError::new(
            file,
            Some(e.line),
            format!("{}.{}", section.name, e.key),
            format!(
                "unknown key `{}`: the [{}] section takes no keys",
                e.key, section.name
            ),
        )),
        None => Ok(()),
    }
}

/// Two sections binding one address could never both start; say so before anything is bound.
/// Port 0 is exempt: each use binds its own ephemeral port.
fn unique_bind(
    file: &str,
    bind: &At<Address>,
    section: &str,
    seen: &mut HashMap<Address, String>,
) -> Res<()> {
    if matches!(bind.value, Address::Tcp { port: 0, .. }) {
        return Ok(());
    }
    if let Some(other) = seen.get(&bind.value) {
        return Err(ConfigError::new(
            file,
            bind.line,
            &bind.key,
            format!("{} is already the bind address of [{other}]", bind.value),
        ));
    }
    seen.insert(bind.value.clone(), section.to_string());
    Ok(())
}

/// One service section: its `bind`, and a draft with no listeners yet (the role decides).
fn service(file: &str, section: &Section, role: Role) -> Res<(At<Address>, ServiceDraft)> {
    let name = &section.name;
    let key = |k: &str| format!("{name}.{k}");
    validate::name(name).map_err(|e| ConfigError::new(file, Some(section.line), name, e))?;
    let mut bind: Option<At<Address>> = None;
    let mut servers: Vec<At<Address>> = Vec::new();
    // The line and key of the first target line, for errors about the target list as a whole.
    let mut first_server: Option<At<()>> = None;
    let mut mode: Option<At<String>> = None;
    for e in &section.entries {
        let at = At::new(e.value.clone(), Some(e.line), key(&e.key));
        match e.key.as_str() {
            "bind" if bind.is_some() => {
                return Err(ConfigError::new(
                    file,
                    at.line,
                    at.key,
                    "`bind` takes exactly one address",
                ))
            }
            "bind" => bind = Some(parse_address(file, at)?),
            // `server=` with the addresses on continuation lines below it is a common layout.
            "server" | "backend" if e.value.is_empty() => {}
            "server" | "backend" => {
                first_server.get_or_insert_with(|| At::new((), at.line, &at.key));
                servers.push(parse_address(file, at)?);
            }
            "mode" if e.continuation => {
                if let Some(m) = mode.as_mut() {
                    m.value = format!("{} {}", m.value, e.value);
                }
            }
            "mode" => mode = Some(at),
            other => {
                return Err(ConfigError::new(
                    file,
                    at.line,
                    at.key,
                    format!(
                        "unknown key `{other}`, expected one of `bind`, `server` (or `backend`), `mode`"
                    ),
                ))
            }
        }
    }
    let missing = |k: &str, also: &str| {
        ConfigError::new(
            file,
            Some(section.line),
            key(k),
            format!("missing key `{k}`{also}"),
        )
    };
    let bind = bind.ok_or_else(|| missing("bind", ""))?;
    let targets_at = first_server.ok_or_else(|| missing("server", " (or `backend`)"))?;
    let draft = ServiceDraft {
        name: At::new(name.clone(), Some(section.line), name.clone()),
        listen: Vec::new(),
        kind: match role {
            Role::Controller => TargetKind::Peers,
            Role::Segment => TargetKind::Backends,
        },
        targets_at,
        targets: servers,
        mode: mode.map(|m| parse_mode(file, m)).transpose()?,
        balance: Balance::RoundRobin,
        connect_timeout: defaults::CONNECT_TIMEOUT,
        latch_timeout: defaults::LATCH_TIMEOUT,
        health_check: None,
        idle_timeout: defaults::IDLE_TIMEOUT,
        mirror: Vec::new(),
        grpc: None,
        limits: Default::default(),
    };
    Ok((bind, draft))
}

/// `half duplex` / `full duplex` as Cloudbus spells them, case-insensitive; `one to one` and the
/// TOML spellings are accepted too, so a file can say what it means explicitly.
fn parse_mode(file: &str, m: At<String>) -> Res<At<Mode>> {
    let normal: Vec<String> = m
        .value
        .to_ascii_lowercase()
        .replace(['-', '_'], " ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mode = match normal.join(" ").as_str() {
        "half duplex" => Mode::HalfDuplex,
        "full duplex" => Mode::FullDuplex,
        "one to one" => Mode::OneToOne,
        _ => {
            return Err(ConfigError::new(
                file,
                m.line,
                m.key,
                format!(
                    "invalid mode \"{}\", expected half duplex, full duplex or one to one",
                    m.value
                ),
            ))
        }
    };
    Ok(At::new(mode, m.line, m.key))
}
