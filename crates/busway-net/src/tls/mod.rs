//! TLS 1.3 with rustls, for bus transports and the admin API (CONTRACT section 10).
//!
//! - [`pem`]: reads the certificate, key and CA files a `[bus.tls]` or `[admin.tls]` names,
//!   with errors that name the key and the file;
//! - [`configs`]: turns such a section into rustls server and client configurations — TLS 1.3
//!   only, the ring provider, client certificates verified against `ca` as `client_auth` says;
//! - [`handshake`]: runs one handshake on an accepted or dialled socket, says which side
//!   detected a failure (so that only that side counts it), and exports the keying material
//!   the bus handshake binds to.
//!
//! The files are read whenever a configuration is built (at start and on every reload), never
//! per connection: a connection only clones an `Arc` of the configuration in force.

pub mod configs;
pub mod handshake;
pub mod pem;

pub use configs::{https_client, provider, TlsConfigs};
pub use handshake::{
    accept, connect, Binding, Buffered, ClientStream, Failure, ServerStream, EXPORTER_LABEL,
    READ_AHEAD,
};
pub use pem::FileError;
pub use rustls::pki_types::ServerName;
pub use rustls::{ClientConfig, ServerConfig};
pub use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};
