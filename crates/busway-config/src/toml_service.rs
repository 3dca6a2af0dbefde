//! `[[service]]` tables of the TOML file, read into [`ServiceDraft`]s for the shared rules.
//!
//! Errors use the key path `service.FIELD` (not `service[NAME].FIELD`): the line number already
//! says which service, and the same path works for syntax errors found before a name is known.

use toml::de::DeValue;

use crate::defaults;
use crate::draft::{At, ServiceDraft, TargetKind};
use crate::error::ConfigError;
use crate::model::{Address, Balance, HealthCheck, Mode, ServiceConfig, ServiceLimits};
use crate::toml_grpc;
use crate::toml_table::{List, Table};
use crate::validate;

type Res<T> = Result<T, ConfigError>;

const KEYS: &[&str] = &[
    "name",
    "listen",
    "peers",
    "backends",
    "mode",
    "balance",
    "connect_timeout",
    "latch_timeout",
    "health_check",
    "idle_timeout",
    "mirror",
    "grpc",
    "anonymous",
    "max_sessions",
    "max_sessions_per_client",
    "new_sessions_per_client",
];

/// Every `[[service]]`, validated, in file order.
pub(crate) fn services(root: &Table<'_, '_>) -> Res<Vec<ServiceConfig>> {
    let Some(v) = root.get("service") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        return Err(root.err(
            &v.span(),
            "service",
            "expected an array of tables: write each service as [[service]]",
        ));
    };
    let mut drafts = Vec::with_capacity(items.len());
    for item in items.iter() {
        let DeValue::Table(t) = item.get_ref() else {
            return Err(root.err(&item.span(), "service", "expected a table"));
        };
        drafts.push(service(&Table {
            src: root.src,
            table: t,
            span: item.span(),
            path: "service".to_string(),
        })?);
    }
    validate::unique_service_names(root.src.file, &drafts)?;
    let discovery = root.get("discovery").is_some();
    for d in &drafts {
        crate::toml_discovery::label_targets(root.src.file, d, discovery)?;
    }
    drafts
        .into_iter()
        .map(|d| validate::finish_service(root.src.file, d))
        .collect()
}

fn service(t: &Table<'_, '_>) -> Res<ServiceDraft> {
    t.deny_unknown(KEYS)?;
    let name = t.required_string("name")?;
    validate::name(&name.value)
        .map_err(|e| ConfigError::new(t.src.file, name.line, &name.key, e))?;
    let listen = t.addresses("listen")?.map(|(_, v)| v).unwrap_or_default();
    let (kind, targets_at, targets) = targets(t)?;
    Ok(ServiceDraft {
        name,
        listen,
        kind,
        targets_at,
        targets,
        mode: mode(t)?,
        balance: balance(t)?,
        connect_timeout: t
            .positive_duration("connect_timeout")?
            .map_or(defaults::CONNECT_TIMEOUT, |d| d.value),
        latch_timeout: t
            .duration("latch_timeout")?
            .map_or(defaults::LATCH_TIMEOUT, |d| d.value),
        health_check: health_check(t)?,
        idle_timeout: t
            .duration("idle_timeout")?
            .map_or(defaults::IDLE_TIMEOUT, |d| d.value),
        mirror: t.addresses("mirror")?.map(|(_, v)| v).unwrap_or_default(),
        grpc: toml_grpc::grpc(t)?,
        limits: limits(t)?,
    })
}

/// CONTRACT section 10: who may open the service and how many sessions it takes.
fn limits(t: &Table<'_, '_>) -> Res<ServiceLimits> {
    let count = |key: &str| -> Res<u32> {
        let Some(n) = t.integer(key)? else {
            return Ok(0);
        };
        u32::try_from(n.value).map_err(|_| {
            ConfigError::new(
                t.src.file,
                n.line,
                &n.key,
                format!(
                    "must be between 0 (no limit) and {}, got {}",
                    u32::MAX,
                    n.value
                ),
            )
        })
    };
    let new_sessions_per_client = match t.string("new_sessions_per_client")? {
        None => 0,
        Some(r) => crate::rate::parse_rate(&r.value)
            .map_err(|e| ConfigError::new(t.src.file, r.line, &r.key, e))?,
    };
    Ok(ServiceLimits {
        anonymous: t.boolean("anonymous")?.is_some_and(|b| b.value),
        max_sessions: count("max_sessions")?,
        max_sessions_per_client: count("max_sessions_per_client")?,
        new_sessions_per_client,
    })
}

type TargetList = (TargetKind, At<()>, Vec<At<Address>>);

/// Exactly one of `peers` and `backends`, non-empty (an empty list counts as absent).
fn targets(t: &Table<'_, '_>) -> Res<TargetList> {
    let non_empty = |l: Option<List<Address>>| l.filter(|(_, v)| !v.is_empty());
    let peers = non_empty(t.addresses("peers")?);
    let backends = non_empty(t.addresses("backends")?);
    match (peers, backends) {
        (Some((p, _)), Some((b, _))) => {
            let later = if p.line > b.line { p } else { b };
            Err(ConfigError::new(
                t.src.file,
                later.line,
                later.key,
                "a service has peers or backends, not both",
            ))
        }
        (Some((at, v)), None) => Ok((TargetKind::Peers, at, v)),
        (None, Some((at, v))) => Ok((TargetKind::Backends, at, v)),
        (None, None) => Err(ConfigError::new(
            t.src.file,
            Some(t.line()),
            "service",
            "a service needs `peers` (to carry sessions to other nodes) or `backends` (to connect servers)",
        )),
    }
}

fn mode(t: &Table<'_, '_>) -> Res<Option<At<Mode>>> {
    let Some(s) = t.string("mode")? else {
        return Ok(None);
    };
    let mode = match s.value.as_str() {
        "one-to-one" => Mode::OneToOne,
        "half-duplex" => Mode::HalfDuplex,
        "full-duplex" => Mode::FullDuplex,
        other => {
            return Err(ConfigError::new(
                t.src.file,
                s.line,
                s.key,
                format!(
                    "invalid mode \"{other}\", expected one-to-one, half-duplex or full-duplex"
                ),
            ))
        }
    };
    Ok(Some(At::new(mode, s.line, s.key)))
}

fn balance(t: &Table<'_, '_>) -> Res<Balance> {
    let Some(s) = t.string("balance")? else {
        return Ok(Balance::RoundRobin);
    };
    match s.value.as_str() {
        "round-robin" => Ok(Balance::RoundRobin),
        "least-sessions" => Ok(Balance::LeastSessions),
        "random" => Ok(Balance::Random),
        other => Err(ConfigError::new(
            t.src.file,
            s.line,
            s.key,
            format!("invalid balance \"{other}\", expected round-robin, least-sessions or random"),
        )),
    }
}

/// Both keys are required: a probe schedule half-specified is more likely a mistake than a wish
/// for some default.
fn health_check(t: &Table<'_, '_>) -> Res<Option<HealthCheck>> {
    let Some(h) = t.table("health_check")? else {
        return Ok(None);
    };
    h.deny_unknown(&["interval", "timeout"])?;
    let missing = |k: &str| h.err_here(k, format!("missing key `{k}`"));
    let interval = h
        .positive_duration("interval")?
        .ok_or_else(|| missing("interval"))?;
    let timeout = h
        .positive_duration("timeout")?
        .ok_or_else(|| missing("timeout"))?;
    Ok(Some(HealthCheck {
        interval: interval.value,
        timeout: timeout.value,
    }))
}
