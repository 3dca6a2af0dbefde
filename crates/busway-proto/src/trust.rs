//! Who the peer turned out to be: the trust level a handshake ends with, and the tokens an
//! acceptor verifies (CONTRACT section 10).

use std::time::SystemTime;

/// What the peer proved, reported in [`crate::Event::Established`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// It proved a shared secret — or neither side has one and `anonymous` is off (the
    /// unauthenticated mode).
    Secret,
    /// It proved the secret of token `id`, issued to `node`. At the acceptor `node` is the
    /// token's name, whatever the peer calls itself, and [`crate::PeerInfo::node`] is that
    /// name too; at the initiator it is the acceptor's own name.
    Token { id: String, node: String },
    /// It proved nothing, and we accept that (`anonymous = true`).
    Anonymous,
}

impl Trust {
    /// The label of `/v1/peers` and of the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Trust::Secret => "secret",
            Trust::Token { .. } => "token",
            Trust::Anonymous => "anonymous",
        }
    }
}

/// A token as the node that issued it knows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// What the holder proves, as the shared secret would be.
    pub secret: Vec<u8>,
    /// The name the holder is known by.
    pub node: String,
    /// The services it may open (the node enforces them, not the protocol).
    pub services: Vec<String>,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("secret", &"<redacted>")
            .field("node", &self.node)
            .field("services", &self.services)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The acceptor's view of the tokens it issued. The node implements it over its token store;
/// it returns only tokens that are live (not expired, not revoked), and closes the transports
/// of a token when it stops being live — the handshake looks a token up once.
pub trait TokenBook: Send + Sync {
    fn find(&self, id: &str) -> Option<TokenGrant>;
}

/// The token an initiator presents instead of a shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenCredential {
    pub id: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCredential")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}
