//! Every default value in one place, shared by the TOML and INI front ends so that the two formats
//! can never drift apart, and so `busway check` and the docs have one source to agree with.

use std::time::Duration;

use crate::model::{BusConfig, Distribute, DnsConfig, GrpcConfig, NodeSection};

pub(crate) const NAMESPACE: &str = "default";
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
pub(crate) const CONNECTIONS_PER_PEER: u32 = 1;
/// More transports than this to one peer buys nothing and costs file descriptors.
pub(crate) const MAX_CONNECTIONS_PER_PEER: u32 = 64;
pub(crate) const DNS_MIN_TTL: Duration = Duration::from_secs(1);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const LATCH_TIMEOUT: Duration = Duration::ZERO;
pub(crate) const IDLE_TIMEOUT: Duration = Duration::ZERO;
/// CONTRACT section 9.6: a bus connection must finish its handshake within 5 s.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Well under the 20,000 file descriptors a process may hold, leaving room for sessions.
pub(crate) const MAX_TRANSPORTS: u32 = 4096;
/// Bus secrets shorter than this are refused: a proof of a short secret is open to guessing.
pub const MIN_SECRET_LEN: usize = 16;

/// `[node]` when the file says nothing about it.
pub(crate) fn node_section() -> NodeSection {
    NodeSection {
        name: crate::hostname(),
        namespace: NAMESPACE.to_string(),
        labels: Default::default(),
        annotations: Default::default(),
        shutdown_grace: SHUTDOWN_GRACE,
        state_dir: None,
    }
}

/// `[bus]` when the file says nothing about it: no listener, no secret.
pub(crate) fn bus() -> BusConfig {
    BusConfig {
        listen: Vec::new(),
        secret: None,
        also_accepted: Vec::new(),
        connections_per_peer: CONNECTIONS_PER_PEER,
        multilink: false,
        anonymous: false,
        token: None,
        resumption: true,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        max_transports: MAX_TRANSPORTS,
        tls: None,
    }
}

/// `[dns]` when the file says nothing about it: the system resolver configuration.
pub(crate) fn dns() -> DnsConfig {
    DnsConfig {
        servers: Vec::new(),
        min_ttl: DNS_MIN_TTL,
    }
}

/// `[service.grpc]` when a gRPC service does not have one, and every key it leaves out.
pub(crate) fn grpc() -> GrpcConfig {
    GrpcConfig {
        distribute: Distribute::PerClient,
        ready_interval: Duration::from_secs(1),
        ready_timeout: Duration::from_secs(1),
        live_interval: Duration::from_secs(1),
        live_timeout: Duration::from_secs(3),
        active_window: Duration::from_secs(60),
        upstream_wait: Duration::from_secs(5),
        lifecycle_events: false,
    }
}
