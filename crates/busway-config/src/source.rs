//! Where a running node's configuration comes from, kept so that a reload (SIGHUP or
//! `POST /v1/reload`) reads the same file, in the same format, that the node started from.

use std::path::PathBuf;

use crate::{ConfigError, NodeConfig, Role};

/// A configuration file and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A busway TOML file (`busway run`).
    Toml(PathBuf),
    /// A Cloudbus INI file (`busway controller` or `busway segment`).
    Ini(PathBuf, Role),
}

impl Source {
    /// Reads and validates the file as it is now.
    pub fn load(&self) -> Result<NodeConfig, ConfigError> {
        match self {
            Source::Toml(p) => crate::load_toml(p),
            Source::Ini(p, role) => crate::load_ini(p, *role),
        }
    }
}
