//! What a [`crate::Connection`] is told (its configuration) and learns (the peer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::ticket::{Resumption, Ticket};
use crate::trust::{TokenBook, TokenCredential};
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
#[derive(Clone)]
pub struct Config {
    /// Our node name, sealed in the handshake (sent only once the peer proved itself).
    pub node: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The shared secret we prove (the first of a `secret` list); `None` runs unauthenticated,
    /// and then a peer that does prove a secret is refused too, since a mismatch means a
    /// misconfigured pair.
    pub secret: Option<Vec<u8>>,
    /// Further secrets a peer may prove (the rest of a `secret` list, while one rotates): a
    /// proof by any of them verifies. Only `secret` is ever proved, and without it these are
    /// not consulted.
    pub accepted: Vec<Vec<u8>>,
    /// Acceptor: also accept a peer that proves nothing, at trust level
    /// [`crate::Trust::Anonymous`]; it never learns our namespace or labels.
    pub anonymous: bool,
    /// Initiator: the token we prove instead of `secret` (both sides then prove the token's
    /// secret).
    pub token: Option<TokenCredential>,
    /// Acceptor: the tokens we issued; a Hello naming a token the book does not return fails
    /// with `token`.
    pub tokens: Option<Arc<dyn TokenBook>>,
    /// Acceptor: issue resumption tickets after proved handshakes and accept them (0-RTT).
    /// One `Arc` shared by every transport of the node.
    pub resumption: Option<Arc<Resumption>>,
    /// Initiator: a ticket from an earlier transport to this peer; the first flight then
    /// carries our identity and any streams opened before the acceptor answered.
    pub ticket: Option<Ticket>,
    /// Under TLS, 32 bytes exported from the TLS session (the same at both ends): bound into
    /// the transcript, so the handshake cannot be moved to another TLS connection. With it the
    /// envelopes keep the CRC-32 (TLS protects them) and the initiator sends its Auth without
    /// waiting for a Challenge.
    pub channel_binding: Option<[u8; 32]>,
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
    /// Announce [`crate::CAP_MULTILINK`]: carrier streams of multi-link sessions may be opened
    /// both ways once the peer announced it too.
    pub multilink: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node: String::new(),
            namespace: "default".to_owned(),
            labels: BTreeMap::new(),
            secret: None,
            accepted: Vec::new(),
            anonymous: false,
            token: None,
            tokens: None,
            resumption: None,
            ticket: None,
            channel_binding: None,
            stream_window: DEFAULT_STREAM_WINDOW,
            conn_window: DEFAULT_CONN_WINDOW,
            ping_interval: Duration::from_millis(500),
            dead_after: 3,
            handshake_timeout: Duration::from_secs(5),
            multilink: false,
        }
    }
}

impl std::fmt::Debug for Config {
    /// Secrets, tokens and tickets are never printed: configs end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("node", &self.node)
            .field("namespace", &self.namespace)
            .field("labels", &self.labels)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("accepted", &self.accepted.len())
            .field("anonymous", &self.anonymous)
            .field("token", &self.token)
            .field("tokens", &self.tokens.is_some())
            .field("resumption", &self.resumption)
            .field("ticket", &self.ticket)
            .field("channel_binding", &self.channel_binding.is_some())
            .field("stream_window", &self.stream_window)
            .field("conn_window", &self.conn_window)
            .field("ping_interval", &self.ping_interval)
            .field("dead_after", &self.dead_after)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("multilink", &self.multilink)
            .finish()
    }
}

impl Config {
    /// Whether we prove something: a shared secret or a token.
    pub fn has_credentials(&self) -> bool {
        self.secret.is_some() || self.token.is_some()
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
    /// The nodes passed so far, `namespace/name#INSTANCE`, the opener last (see
    /// [`crate::Open::path`]).
    pub path: Vec<String>,
    /// The node the session is for, `namespace/name`, or empty.
    pub to: String,
}
