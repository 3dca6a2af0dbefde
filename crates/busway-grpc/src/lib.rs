//! The gRPC gateway: raw TCP (or Unix, or bus-carried) clients, the "downstreams", each tagged
//! with a UUID v4 and demultiplexed over one long-lived bidirectional stream per upstream, in the
//! PersistentParadoxPlex upstream protocol (`proto/upstream.proto`, unchanged).
//!
//! The crate knows nothing of sockets: the node hands it a client with [`Gateway::attach`] and
//! moves bytes between the returned [`Downstream`] and the socket (or bus stream). That keeps one
//! code path for downstreams accepted directly and for those that arrive over a bus transport.
//!
//! - [`gateway`]: upstreams and downstreams of one service, assignment, routing, broadcast;
//! - [`downstream`]: one client's uuid, counters and bounded reply queue;
//! - [`upstream`]: one upstream's health flags and counters;
//! - `link`: the task that keeps an upstream's connection and three calls alive;
//! - `queue`: the bounded queue into one upstream's call, for data and lifecycle events;
//! - [`text`]: peer-supplied text cut short before it is logged;
//! - [`reference`]: the reference upstream used by tests, demos and benchmarks.

pub mod downstream;
pub mod gateway;
mod link;
pub mod metrics;
pub mod pb;
mod queue;
pub mod reference;
pub mod text;
pub mod time;
pub mod upstream;

pub use downstream::{Closed, Downstream, DownstreamView, Undelivered, OUT_CAP};
pub use gateway::{AddError, Broadcast, Gateway, NoUpstream, Settings};
pub use link::MAX_MESSAGE;
pub use queue::{EVENT_QUEUE, QUEUE};
pub use upstream::UpstreamView;
