//! The bus: transports between nodes and the session streams they carry.
//!
//! - [`driver`] runs one transport: it owns the socket and the sans-IO
//!   [`busway_proto::Connection`], and is the only task that touches either.
//! - [`stream`] is a session's handle on one stream of a transport.
//! - [`pool`] keeps `connections_per_peer` transports open to one peer, redialling with backoff.
//! - [`info`] is what the admin API and metrics see of a transport.

pub mod driver;
pub mod info;
pub mod pool;
pub mod stream;

pub use info::{TransportInfo, Transports};
pub use pool::{PeerPool, Pools};
pub use stream::{BusRecv, BusSend, Inbound};
