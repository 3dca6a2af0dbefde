//! The rules both formats share: names, listeners, and turning a [`ServiceDraft`] into the
//! [`ServiceConfig`] the runtime reads (defaults that depend on other keys included).

use std::collections::HashMap;

use crate::address::{is_socket, scheme};
use crate::defaults;
use crate::draft::{At, ServiceDraft, TargetKind};
use crate::error::ConfigError;
use crate::model::{Address, GrpcConfig, Mode, ServiceConfig, Targets};
use crate::unsupported;

/// Service, node and namespace names travel in bus frames, metric labels and discovery keys, so
/// they are kept to characters that need no escaping anywhere.
pub(crate) fn name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("a name cannot be empty".to_string());
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "invalid name \"{value}\": character '{c}' is not allowed (use A-Z a-z 0-9 . _ -)"
        )),
        None => Ok(()),
    }
}

/// A bus listener is a socket peers connect to: nothing else can be bound.
pub(crate) fn bus_listener(file: &str, at: &At<Address>) -> Result<(), ConfigError> {
    if is_socket(&at.value) {
        return Ok(());
    }
    Err(ConfigError::new(
        file,
        at.line,
        &at.key,
        format!(
            "a bus listener must be a tcp:// or unix:// address, not {}",
            scheme(&at.value)
        ),
    ))
}

/// The admin API is HTTP over TCP, so its listener must be `tcp://`.
pub(crate) fn admin_listener(file: &str, at: &At<Address>) -> Result<(), ConfigError> {
    if matches!(at.value, Address::Tcp { .. }) {
        return Ok(());
    }
    Err(ConfigError::new(
        file,
        at.line,
        &at.key,
        format!(
            "the admin listener must be a tcp:// address, not {}",
            scheme(&at.value)
        ),
    ))
}

/// Applies the whole-service rules and defaults, and the not-yet-supported checks.
pub(crate) fn finish_service(file: &str, s: ServiceDraft) -> Result<ServiceConfig, ConfigError> {
    let err = |at: &At<()>, msg: &str| Err(ConfigError::new(file, at.line, &at.key, msg));
    if s.targets.is_empty() {
        return err(&s.targets_at, "a service needs at least one target");
    }
    if s.kind == TargetKind::Peers && s.listen.is_empty() {
        return err(
            &s.targets_at,
            "a service with peers is an ingress and needs `listen` addresses for its clients",
        );
    }
    mdns_targets(file, &s)?;
    let grpc = grpc_rules(file, &s)?;
    // CONTRACT section 3: several entries as written (before DNS) mean fan-out by default.
    let mode = match &s.mode {
        _ if grpc.is_some() => Mode::OneToOne,
        Some(m) => m.value,
        None if s.targets.len() > 1 => Mode::HalfDuplex,
        None => Mode::OneToOne,
    };
    unsupported::check_service(file, &s)?;
    let addresses = |v: Vec<At<Address>>| v.into_iter().map(|a| a.value).collect::<Vec<_>>();
    let targets = match s.kind {
        TargetKind::Peers => Targets::Peers(addresses(s.targets)),
        TargetKind::Backends => Targets::Backends(addresses(s.targets)),
    };
    Ok(ServiceConfig {
        name: s.name.value,
        listen: addresses(s.listen),
        targets,
        mode,
        balance: s.balance,
        connect_timeout: s.connect_timeout,
        latch_timeout: s.latch_timeout,
        health_check: s.health_check,
        idle_timeout: s.idle_timeout,
        mirror: addresses(s.mirror),
        grpc,
        limits: s.limits,
    })
}

/// `mdns:` targets find busway nodes (their bus listeners, CONTRACT section 7), which only an
/// ingress dials: a backend found by multicast DNS would be a socket of unknown protocol
/// reached without the bus, so they are refused in `backends` rather than guessed at.
fn mdns_targets(file: &str, s: &ServiceDraft) -> Result<(), ConfigError> {
    if s.kind == TargetKind::Peers {
        return Ok(());
    }
    match s
        .targets
        .iter()
        .find(|t| matches!(t.value, Address::Mdns(_)))
    {
        Some(t) => Err(ConfigError::new(
            file,
            t.line,
            &t.key,
            "mdns: targets are busway nodes found by multicast DNS: list them in `peers`, not `backends`",
        )),
        None => Ok(()),
    }
}

/// A gRPC gateway service: every backend is a `grpc://` upstream, and the keys that only make
/// sense for socket targets are refused rather than ignored.
fn grpc_rules(file: &str, s: &ServiceDraft) -> Result<Option<GrpcConfig>, ConfigError> {
    let is_upstream = |a: &At<Address>| matches!(a.value, Address::Grpc { .. });
    let err = |line: Option<usize>, key: &str, msg: &str| {
        Err(ConfigError::new(file, line, key, msg.to_string()))
    };
    let Some(first) = s.targets.iter().find(|t| is_upstream(t)) else {
        return match &s.grpc {
            Some(g) => err(
                g.line,
                &g.key,
                "`[service.grpc]` applies only to a service whose backends are grpc:// upstreams",
            ),
            None => Ok(None),
        };
    };
    if s.kind == TargetKind::Peers {
        return err(
            first.line,
            &first.key,
            "grpc:// upstreams are backends, not bus peers",
        );
    }
    if let Some(t) = s.targets.iter().find(|t| !is_upstream(t)) {
        return err(
            t.line,
            &t.key,
            "a gRPC service's backends must all be grpc:// upstreams",
        );
    }
    if let Some(m) = &s.mode {
        return err(
            m.line,
            &m.key,
            "`mode` does not apply to a gRPC service; `[service.grpc].distribute` says how its downstreams are spread",
        );
    }
    if let Some(m) = s.mirror.first() {
        return err(m.line, &m.key, "a gRPC service cannot have mirrors");
    }
    Ok(Some(
        s.grpc.as_ref().map_or_else(defaults::grpc, |g| g.value),
    ))
}

/// Sessions are routed by service name across the bus, so a name must mean one service.
pub(crate) fn unique_service_names(file: &str, drafts: &[ServiceDraft]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, Option<usize>> = HashMap::new();
    for d in drafts {
        if let Some(first) = seen.insert(&d.name.value, d.name.line) {
            let where_ = first
                .map(|l| format!(" (first on line {l})"))
                .unwrap_or_default();
            return Err(ConfigError::new(
                file,
                d.name.line,
                &d.name.key,
                format!("duplicate service name \"{}\"{where_}", d.name.value),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_allow_only_plain_characters() {
        assert!(name("chat-1.v2_x").is_ok());
        assert!(name("").unwrap_err().contains("empty"));
        assert!(name("a b").unwrap_err().contains("' '"));
        assert!(name("a/b").unwrap_err().contains("'/'"));
    }
}
