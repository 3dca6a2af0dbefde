//! Everything the contract describes that this version of busway does not run yet.
//!
//! Refusing these at load time, with the line and key, is better than accepting a file whose
//! meaning the runtime would silently ignore. Each check is one independent block: when the
//! runtime learns a feature, delete its block (and its test) and nothing else changes.

use crate::address::{is_socket, scheme};
use crate::draft::{At, ServiceDraft};
use crate::error::ConfigError;
use crate::model::Address;

/// Top-level TOML sections the contract names that are not read yet (none today: sections 6
/// and 7 are read).
pub(crate) const SECTIONS: &[&str] = &[];

/// The error for a top-level section in [`SECTIONS`].
pub(crate) fn section(file: &str, key: &str, line: Option<usize>) -> ConfigError {
    ConfigError::new(file, line, key, format!("`{key}` is not yet supported"))
}

/// The per-service checks.
pub(crate) fn check_service(file: &str, service: &ServiceDraft) -> Result<(), ConfigError> {
    let err = |at_line: Option<usize>, key: &str, msg: String| {
        Err(ConfigError::new(file, at_line, key, msg))
    };

    // Mirrors are dialled directly: plain sockets only.
    if let Some(m) = service.mirror.iter().find(|m| !is_socket(&m.value)) {
        return err(
            m.line,
            &m.key,
            format!(
                "{} mirrors are not supported (use tcp:// or unix://)",
                scheme(&m.value)
            ),
        );
    }

    // Listeners other than plain sockets.
    check_listeners(file, &service.listen)
}

fn check_listeners(file: &str, listen: &[At<Address>]) -> Result<(), ConfigError> {
    match listen.iter().find(|l| !is_socket(&l.value)) {
        Some(l) => Err(ConfigError::new(
            file,
            l.line,
            &l.key,
            format!(
                "{} listeners are not yet supported (use tcp:// or unix://)",
                scheme(&l.value)
            ),
        )),
        None => Ok(()),
    }
}
