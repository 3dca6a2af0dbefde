//! The gRPC gateway: raw TCP (or Unix, or bus-carried) clients, the "downstreams", each tagged
//! with a UUID v4 and demultiplexed over one long-lived bidirectional stream per upstream, in the
//! PersistentParadoxPlex upstream protocol (`proto/upstream.proto`, unchanged).
//!
//! The crate knows nothing of sockets: the node hands it a client as a [`Downstream`] handle and
//! moves bytes between the handle and the socket (or bus stream). That keeps one code path for
//! downstreams accepted directly and for those that arrive over a bus transport.

pub mod pb;
pub mod reference;
pub mod time;

pub use pb::upstream_peer_service_client::UpstreamPeerServiceClient;
