//! The bus: transports between nodes and the session streams they carry.
//!
//! - [`transport`] is one transport's shared state: the sans-IO [`busway_proto::Connection`]
//!   behind one lock, with the wakers of the sessions waiting on it.
//! - [`driver`] runs one transport: it alone touches the socket.
//! - [`stream`] is a session's handle on one stream; [`multi`] spreads a session over every
//!   transport to its peer (`[bus] multilink`).
//! - [`pool`] keeps `connections_per_peer` transports open to one peer; each comes from one
//!   slot's [`dial`] loop, which redials with backoff; [`tickets`] holds the resumption
//!   tickets the peer gave it, for 0-RTT redials, and [`held`] saves them across a restart.
//! - [`accept`] takes what a bus listener accepted: `max_transports`, then TLS within
//!   `handshake_timeout`; [`tls`] is `[bus.tls]` as both sides use it.

pub(crate) mod accept;
mod dial;
pub mod driver;
pub mod held;
pub mod multi;
pub mod pool;
pub mod stream;
pub mod tickets;
pub mod tls;
pub mod transport;

pub use pool::{PeerPool, PoolState, Pools};
pub use stream::{BusStream, StreamEnd};
pub use transport::{PeerView, Transport, Transports};
