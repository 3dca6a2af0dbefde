//! `[bus.tls]` as the node uses it: what a bus listener wraps accepted sockets in, what a dial
//! wraps its socket in, and which name a dialled peer's certificate must carry.
//!
//! One [`BusTls`] is made from the files at start and again on every reload; transports take
//! the one in force when their socket is accepted or dialled, so new transports use renewed
//! certificates while established ones keep the session they negotiated.

use busway_config::{ConfigError, TlsConfig};
use busway_net::tls::{Binding, FileError, ServerName, TlsAcceptor, TlsConfigs, TlsConnector};
use busway_net::EndpointAddr;

/// The TLS side of a node's bus.
#[derive(Clone)]
pub struct BusTls {
    /// For bus listeners; `None` on a node without `cert` (one that only dials).
    pub acceptor: Option<TlsAcceptor>,
    /// For peer dials; `None` on a node without `ca` (one that only listens).
    pub connector: Option<TlsConnector>,
    /// `server_name`, when configured: the name every dialled peer must prove.
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for BusTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusTls")
            .field("listens", &self.acceptor.is_some())
            .field("dials", &self.connector.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A file error as the configuration error it is (exit 2 at start, a refused reload later).
pub fn config_error(e: FileError) -> ConfigError {
    ConfigError::new(&e.path.display().to_string(), None, e.key, e.message)
}

impl BusTls {
    /// Reads the files of `[bus.tls]`.
    pub fn load(cfg: &TlsConfig) -> Result<BusTls, ConfigError> {
        let c = TlsConfigs::load(cfg, "bus.tls").map_err(config_error)?;
        let server_name = match &cfg.server_name {
            None => None,
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| {
                ConfigError::new(
                    "",
                    None,
                    "bus.tls.server_name",
                    format!("{n:?} is neither a DNS name nor an IP address"),
                )
            })?),
        };
        Ok(BusTls {
            acceptor: c.server.map(TlsAcceptor::from),
            connector: c.client.map(TlsConnector::from),
            server_name,
        })
    }

    /// The name the certificate of the peer at `ep` must carry (docs/OPERATIONS.md, "TLS"):
    /// `server_name` when configured; otherwise the host of the peer's URL (`host`, as the
    /// address was written: a DNS name, or an IP literal that the certificate must list as an
    /// IP address); `localhost` for a Unix socket, which has no host.
    pub fn server_name_for(
        &self,
        ep: &EndpointAddr,
        host: Option<&str>,
    ) -> Result<ServerName<'static>, String> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        let name = match (ep, host) {
            (_, Some(h)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            (EndpointAddr::Tcp(a), None) => a.ip().to_string(),
            (EndpointAddr::Unix(_), None) => "localhost".to_string(),
        };
        ServerName::try_from(name.clone()).map_err(|_| {
            format!("{name:?} cannot be checked against a certificate: set bus.tls.server_name")
        })
    }
}

/// Hands the keying material a TLS session exported to the bus handshake, which binds it into
/// its transcript (docs/PROTOCOL.md section 3.1): the handshake then belongs to this TLS
/// connection and no other, and the initiator sends its proof without waiting for the
/// acceptor's nonce. Both ends set it from the same session, or their proofs fail.
pub fn bind_channel(proto: &mut busway_proto::Config, binding: Option<Binding>) {
    proto.channel_binding = binding;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(server_name: Option<&str>) -> BusTls {
        BusTls {
            acceptor: None,
            connector: None,
            server_name: server_name.map(|n| ServerName::try_from(n.to_string()).unwrap()),
        }
    }

    #[test]
    fn the_server_name_rule() {
        let tcp = EndpointAddr::Tcp(([10, 0, 0, 7], 7001).into());
        let unix = EndpointAddr::Unix("/run/busway/bus.sock".into());
        let t = bare(None);
        let name = |ep, host| t.server_name_for(ep, host).unwrap().to_str().into_owned();
        assert_eq!(name(&tcp, Some("bus.example.org")), "bus.example.org");
        assert_eq!(name(&tcp, None), "10.0.0.7");
        assert_eq!(name(&tcp, Some("[::1]")), "::1");
        assert_eq!(name(&unix, None), "localhost");
        let fixed = bare(Some("bus.internal"));
        assert_eq!(
            fixed
                .server_name_for(&unix, None)
                .unwrap()
                .to_str()
                .as_ref(),
            "bus.internal"
        );
        assert!(t.server_name_for(&tcp, Some("not a name")).is_err());
    }
}
