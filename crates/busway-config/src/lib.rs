//! busway's configuration: the TOML file (CONTRACT section 3) and the Cloudbus INI format
//! (section 4), each parsed once, at the edge, into the one typed model in [`model`] that the rest
//! of busway reads.
//!
//! # Errors
//!
//! Every loader returns a [`ConfigError`], which prints as one line:
//!
//! ```text
//! FILE:LINE: KEY: MESSAGE
//! busway.toml:12: service.connect_timeout: invalid duration "3x": unknown unit "x", expected one of ns, us, ms, s, m, h
//! ```
//!
//! `:LINE` is left out when there is no line (a file that cannot be read) and `KEY: ` when there is
//! no key. Messages never contain a secret's value.
//!
//! # Key naming
//!
//! * TOML: the dotted path of the key as written: `node.name`, `bus.listen`, `dns.min_ttl`,
//!   `service.health_check.interval`, `node.labels.zone`. Entries of an array use the array's key
//!   (`bus.listen`) and point at the entry's own line. Services are **not** indexed or named in the
//!   path — it is always `service.FIELD` — because the line already says which `[[service]]` is
//!   meant, and the same path then works for toml syntax errors found before any name is known. An
//!   error about a whole service (no `peers` and no `backends`) uses `service` and the line of its
//!   `[[service]]` header; a missing key uses its would-be path and the header's line.
//! * INI: `SECTION.key`, the section name as written and the key lower-cased (keys are
//!   case-insensitive): `chat.server`, `Cloudbus.foo`. Errors about a whole section use the section
//!   name as the key and the header's line.
//!
//! # Not yet supported
//!
//! Parts of the contract the runtime does not run yet (today: nothing in sections 6 and 7) are
//! refused with a `… is not yet supported` error rather than accepted and ignored; the checks all
//! live in one module so each can be removed when its feature lands.

mod address;
mod defaults;
mod draft;
mod duration;
mod error;
mod ini;
mod ini_syntax;
pub mod model;
mod rate;
mod render;
mod secret;
mod source;
mod toml_cluster;
mod toml_discovery;
mod toml_file;
mod toml_grpc;
mod toml_node;
mod toml_relay;
mod toml_service;
mod toml_syntax;
mod toml_table;
mod toml_tls;
mod unsupported;
mod validate;

use std::path::Path;

pub use defaults::MIN_SECRET_LEN;
pub use duration::parse_duration;
pub use error::ConfigError;
pub use ini::{parse_ini, Role};
pub use model::*;
pub use render::{render_toml, REDACTED};
pub use source::Source;

/// Reads and parses a TOML file; `env:NAME` secrets are read from the process environment now.
pub fn load_toml(path: &Path) -> Result<NodeConfig, ConfigError> {
    let text = read(path)?;
    parse_toml(&text, &path.display().to_string())
}

/// Parses TOML text; `file` is only used in error messages.
pub fn parse_toml(text: &str, file: &str) -> Result<NodeConfig, ConfigError> {
    toml_file::parse(text, file, &secret::process_env)
}

/// Reads and parses a Cloudbus INI file for `role`.
pub fn load_ini(path: &Path, role: Role) -> Result<NodeConfig, ConfigError> {
    let text = read(path)?;
    parse_ini(&text, &path.display().to_string(), role)
}

/// Far above any real configuration. Without a cap, `--config /dev/zero` or a log file named by
/// mistake is read until memory runs out.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let file = path.display().to_string();
    let err = |msg: String| ConfigError::new(&file, None, "", msg);
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(err(format!(
            "larger than {} MiB: not a configuration file",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(text)
}

/// The host name, the default node name: `/proc/sys/kernel/hostname`, or `"busway"` where that
/// cannot be read (not Linux, a sandbox without /proc), so a default always exists.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "busway".to_string())
}

/// Checks a service, node or namespace name by the rules the config files use (for names that
/// arrive by other ways, such as the tokens API).
pub fn validate_name(value: &str) -> Result<(), String> {
    validate::name(value)
}
