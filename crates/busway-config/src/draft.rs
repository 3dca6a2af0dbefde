//! What a front end (TOML or INI) hands to the shared rules: values already typed, each still
//! carrying the line and key it came from, so rules that span several keys (defaults that depend
//! on a count, "not both", "not yet supported") can still point at the right line.

use std::time::Duration;

use crate::error::ConfigError;
use crate::model::{Address, Balance, GrpcConfig, HealthCheck, Mode, ServiceLimits};

/// A value and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct At<T> {
    pub value: T,
    pub line: Option<usize>,
    pub key: String,
}

impl<T> At<T> {
    pub fn new(value: T, line: Option<usize>, key: impl Into<String>) -> Self {
        At {
            value,
            line,
            key: key.into(),
        }
    }
}

/// Whether a service's targets are bus peers (an ingress) or backends (an egress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetKind {
    Peers,
    Backends,
}

/// One service as read, before the rules that look at it as a whole.
#[derive(Clone, Debug)]
pub(crate) struct ServiceDraft {
    /// The name, with the line of its key (TOML) or of its section header (INI).
    pub name: At<String>,
    pub listen: Vec<At<Address>>,
    pub kind: TargetKind,
    /// The line and key of the target list as a whole (`service.peers`, `Name.server`).
    pub targets_at: At<()>,
    pub targets: Vec<At<Address>>,
    /// `None` when the file does not say; the default depends on the number of targets.
    pub mode: Option<At<Mode>>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    pub latch_timeout: Duration,
    pub health_check: Option<HealthCheck>,
    pub idle_timeout: Duration,
    pub mirror: Vec<At<Address>>,
    /// `[service.grpc]` as written, with the line of its header.
    pub grpc: Option<At<GrpcConfig>>,
    pub limits: ServiceLimits,
}

/// Parses a located string as an [`Address`], keeping its location.
pub(crate) fn parse_address(file: &str, s: At<String>) -> Result<At<Address>, ConfigError> {
    match s.value.parse::<Address>() {
        Ok(a) => Ok(At::new(a, s.line, s.key)),
        Err(e) => Err(ConfigError::new(
            file,
            s.line,
            s.key,
            format!("invalid address \"{}\": {e}", s.value),
        )),
    }
}
