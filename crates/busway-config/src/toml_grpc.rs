//! `[service.grpc]`: the gateway keys of a service whose backends are `grpc://` upstreams.
//!
//! Every key is optional; what the file leaves out comes from [`defaults::grpc`]. Whether the
//! table fits the service (its backends are upstreams) is a whole-service rule, checked in
//! `validate` once the targets are known.

use crate::defaults;
use crate::draft::At;
use crate::error::ConfigError;
use crate::model::{Distribute, GrpcConfig};
use crate::toml_table::Table;

const KEYS: &[&str] = &[
    "distribute",
    "ready_interval",
    "ready_timeout",
    "live_interval",
    "live_timeout",
    "active_window",
    "upstream_wait",
    "lifecycle_events",
];

/// The table under `service.grpc`, if there is one.
pub(crate) fn grpc(service: &Table<'_, '_>) -> Result<Option<At<GrpcConfig>>, ConfigError> {
    let Some(t) = service.table("grpc")? else {
        return Ok(None);
    };
    t.deny_unknown(KEYS)?;
    let d = defaults::grpc();
    let positive = |k: &str, default| {
        t.positive_duration(k)
            .map(|v| v.map_or(default, |v| v.value))
    };
    let distribute = match t.string("distribute")? {
        None => d.distribute,
        Some(s) => match s.value.as_str() {
            "per-client" => Distribute::PerClient,
            "per-chunk" => Distribute::PerChunk,
            other => {
                return Err(ConfigError::new(
                    t.src.file,
                    s.line,
                    s.key,
                    format!("invalid distribute \"{other}\", expected per-client or per-chunk"),
                ))
            }
        },
    };
    let cfg = GrpcConfig {
        distribute,
        ready_interval: positive("ready_interval", d.ready_interval)?,
        ready_timeout: positive("ready_timeout", d.ready_timeout)?,
        live_interval: positive("live_interval", d.live_interval)?,
        live_timeout: positive("live_timeout", d.live_timeout)?,
        active_window: positive("active_window", d.active_window)?,
        upstream_wait: t
            .duration("upstream_wait")?
            .map_or(d.upstream_wait, |v| v.value),
        lifecycle_events: t
            .boolean("lifecycle_events")?
            .map_or(d.lifecycle_events, |v| v.value),
    };
    if cfg.live_timeout <= cfg.live_interval {
        let at = t.duration("live_timeout")?;
        let line = at.as_ref().map_or(Some(t.line()), |a| a.line);
        return Err(ConfigError::new(
            t.src.file,
            line,
            t.key("live_timeout"),
            "`live_timeout` must be longer than `live_interval`, or every upstream is dead between two heartbeats",
        ));
    }
    Ok(Some(At::new(cfg, Some(t.line()), service.key("grpc"))))
}
