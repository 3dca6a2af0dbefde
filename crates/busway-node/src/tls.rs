//! The TLS a node's configuration asks for, loaded from its files: `[bus.tls]` for bus
//! listeners and dials ([`crate::bus::tls`]), `[admin.tls]` for the admin API.
//!
//! Loaded whole or not at all, at start (a bad file is a configuration error, exit 2, before
//! anything is bound) and on every reload (a bad file refuses the reload, and the TLS in force
//! stays). Nothing is read per connection.

use std::sync::Arc;

use busway_config::{ConfigError, NodeConfig};
use busway_net::tls::{ServerConfig, TlsConfigs};

use crate::bus::tls::{config_error, BusTls};

/// Everything TLS of one configuration.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub bus: Option<Arc<BusTls>>,
    pub admin: Option<Arc<ServerConfig>>,
}

impl Loaded {
    pub fn load(cfg: &NodeConfig) -> Result<Loaded, ConfigError> {
        let bus = cfg
            .bus
            .tls
            .as_ref()
            .map(|t| BusTls::load(t).map(Arc::new))
            .transpose()?;
        let admin = match cfg.admin.as_ref().and_then(|a| a.tls.as_ref()) {
            None => None,
            Some(t) => {
                let c = TlsConfigs::load(t, "admin.tls").map_err(config_error)?;
                c.server
            }
        };
        Ok(Loaded { bus, admin })
    }
}
