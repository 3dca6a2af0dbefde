//! busway-node: the runtime of one busway node.
//!
//! Data flows one way through it: a [listener](listen) accepts a client, a
//! [session](session) picks a target — a bus peer (through a [transport pool](bus::pool)) or a
//! backend — and the [pump](pump) moves bytes until both sides are done. A client of a gRPC
//! gateway service becomes a downstream of its `busway_grpc::Gateway` instead. Streams that peers open
//! over the bus arrive through the [transport driver](bus::driver) and become sessions too.
//! A session passes its service's [limits] before anything is dialled. Around that: the
//! [admin API](admin), [metrics], the [session registry](sessions), drain in [`node`] and
//! [reload](reload); [`tls`] loads the certificates of `[bus.tls]` and `[admin.tls]`.

pub mod admin;
pub mod bus;
pub mod cluster;
pub mod demo;
pub mod discovery;
pub mod fanout;
mod grpc_session;
pub mod limits;
pub mod listen;
mod mdns;
pub mod metrics;
pub mod mirror;
pub mod node;
mod peers;
pub mod pump;
mod relay;
pub mod reload;
pub mod service;
pub mod session;
pub mod sessions;
mod state_file;
mod tls;
pub mod tokens;
mod trust;

pub use node::{Listening, Node, StartError};
pub use reload::ReloadError;
