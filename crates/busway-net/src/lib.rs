//! busway-net: everything that turns a configured [`Address`](busway_config::Address) into sockets.
//!
//! - [`conn`]: one stream type for TCP and Unix sockets, usable from two directions at once.
//! - [`listener`]: binding listeners (with the Unix stale-socket rules) and accepting.
//! - [`dns`]: name resolution with TTLs, honouring `[dns]` and /etc/hosts.
//! - [`targets`]: target sets — the endpoints behind a service's addresses and the balancing
//!   between them; [`endpoint`]: one endpoint's health (ejection, probes, retirement).
//! - [`backoff`]: the one jittered backoff every retry uses.
//! - [`dial`]: connecting an endpoint within a timeout.
//! - [`tls`]: TLS 1.3 with rustls, from a `[bus.tls]` or `[admin.tls]` section.

pub mod backoff;
pub mod conn;
pub mod dial;
pub mod dns;
pub mod endpoint;
pub mod listener;
pub mod targets;
pub mod tls;

pub use backoff::Backoff;
pub use conn::Conn;
pub use dial::{dial, dial_address, DialError};
pub use dns::Resolver;
pub use listener::{BindError, Listener};
pub use targets::{Endpoint, EndpointAddr, TargetSet};
