//! What a [`crate::Connection`] is told (its configuration) and learns (the peer).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{DEFAULT_CONN_WINDOW, DEFAULT_STREAM_WINDOW};

/// Which end of the transport we are; it fixes the handshake role and stream id parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that dialled the transport: sends Hello, opens odd stream ids.
    Initiator,
    /// The side that accepted it: sends Welcome, opens even stream ids.
    Acceptor,
}

/// Settings of one transport.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our node name, sent in the handshake and bound into the proofs.
    pub node: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Shared secret both nodes must hold; `None` runs unauthenticated, and then a peer that
    /// does prove a secret is refused too, since a mismatch means a misconfigured pair.
    pub secret: Option<Vec<u8>>,
    /// Further secrets a peer may prove (the rest of a `secret` list, while one rotates): a
    /// proof by any of them verifies. Only `secret` is ever proved, and without it these are
    /// not consulted.
    pub accepted: Vec<Vec<u8>>,
    /// Credit we grant the peer on each stream: the most unconsumed bytes we buffer per stream.
    pub stream_window: u32,
    /// Credit we grant the peer over the whole transport: the most bytes in flight at once.
    pub conn_window: u32,
    /// How often we ping once established. Zero disables pings and dead-peer detection.
    pub ping_interval: Duration,
    /// Ping intervals without receiving any frame after which the peer is declared dead.
    pub dead_after: u32,
    /// How long the handshake may take, counted from [`crate::Connection::new`].
    pub handshake_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node: String::new(),
            namespace: "default".to_owned(),
            labels: BTreeMap::new(),
            secret: None,
            accepted: Vec::new(),
            stream_window: DEFAULT_STREAM_WINDOW,
            conn_window: DEFAULT_CONN_WINDOW,
            ping_interval: Duration::from_millis(500),
            dead_after: 3,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// The peer as its handshake frame described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub node: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub capabilities: Vec<String>,
    /// Largest encoded frame the peer accepts.
    pub max_frame: u32,
    /// Initial credit the peer grants us on each stream.
    pub stream_window: u32,
    /// Initial credit the peer grants us over the whole transport.
    pub conn_window: u32,
}

/// What to put in an Open frame; the stream id is chosen by the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenParams {
    pub service: String,
    pub session_id: String,
    pub client: String,
    pub mode: String,
    pub labels: BTreeMap<String, String>,
    pub hops: u32,
}
