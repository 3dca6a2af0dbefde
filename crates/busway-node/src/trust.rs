//! The trust levels of CONTRACT section 10 as the node enforces them: what a transport may
//! open, the tokens its handshakes check, the resumption state its tickets use, and the
//! transports that must close when a token ends or a secret leaves the list.
//!
//! The protocol decides *who* a peer is (busway-proto's handshake reports a [`Trust`]); this
//! module decides what that peer may do here, and keeps deciding it: a token can be revoked
//! or expire while its transports run, so they are checked again every [`WATCH_EVERY`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use busway_config::NodeConfig;
use busway_proto::{Resumption, Side, TokenBook, TokenCredential, TokenGrant, Trust};

use crate::bus::Transport;
use crate::node::Node;
use crate::service::ServiceState;
use crate::tokens::{TokenString, Tokens};

/// How often live transports are checked against their tokens: revocation and expiry close
/// them within this (CONTRACT: within 1 s).
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// The most resumption ticket ids remembered at once (each accepted ticket is one).
const STRIKE_CAPACITY: usize = busway_proto::DEFAULT_STRIKE_CAPACITY;
/// The file of the resumption state in `state_dir`.
const RESUMPTION_FILE: &str = "resumption.state";

/// The node's token store as the handshake asks it.
struct Book(Arc<Tokens>);

impl TokenBook for Book {
    fn find(&self, id: &str) -> Option<TokenGrant> {
        self.0.find(id, SystemTime::now()).map(|t| TokenGrant {
            secret: t.secret().to_vec(),
            node: t.node.clone(),
            services: t.services.clone(),
            expires_at: t.expires_at,
        })
    }
}

/// The settings of a transport made now from `cfg`; an unusable `[bus] token` is an error that
/// names the key.
pub(crate) fn proto_config(
    cfg: &NodeConfig,
    tokens: &Arc<Tokens>,
    resumption: Option<&Arc<Resumption>>,
) -> Result<busway_proto::Config, String> {
    let token = match &cfg.bus.token {
        None => None,
        Some(raw) => {
            let t = TokenString::parse(raw.expose()).ok_or_else(|| {
                "bus.token: not a token this version issues (expected bwt1_ID_SECRET, as POST /v1/tokens answers)".to_string()
            })?;
            Some(TokenCredential {
                id: t.id,
                secret: t.secret.to_vec(),
            })
        }
    };
    let bytes = |s: &busway_config::Secret| s.expose().as_bytes().to_vec();
    Ok(busway_proto::Config {
        node: cfg.node.name.clone(),
        namespace: cfg.node.namespace.clone(),
        labels: cfg.node.labels.clone(),
        secret: cfg.bus.secret.as_ref().map(bytes),
        accepted: cfg.bus.also_accepted.iter().map(bytes).collect(),
        anonymous: cfg.bus.anonymous,
        token,
        tokens: Some(Arc::new(Book(tokens.clone()))),
        resumption: resumption.filter(|_| cfg.bus.resumption).cloned(),
        handshake_timeout: cfg.bus.handshake_timeout,
        multilink: cfg.bus.multilink,
        ..busway_proto::Config::default()
    })
}

/// Whether `t` may open `svc`: every service for `secret`, the token's services for `token`,
/// services with `anonymous = true` for `anonymous`.
///
/// Only the accepting end judges: a node that dialled chose its peer (and verified it with the
/// token or the secret it holds), so what that peer opens towards it is not limited here.
pub(crate) fn may_open(node: &Node, t: &Transport, svc: &ServiceState) -> bool {
    allowed(node, t, &svc.name, svc.config().limits.anonymous)
}

/// Whether `t` may have this node carry a session for `service` on to another node (CONTRACT
/// section 6, relays): as [`may_open`], except that an `anonymous` transport never may — an
/// anonymous client reaches only this node's own anonymous services, not whatever lies beyond
/// it.
pub(crate) fn may_relay(node: &Node, t: &Transport, service: &str) -> bool {
    allowed(node, t, service, false)
}

/// The trust rule of [`may_open`] for `service`, with `anonymous` saying whether an anonymous
/// transport may.
fn allowed(node: &Node, t: &Transport, service: &str, anonymous: bool) -> bool {
    if t.side() == Side::Initiator {
        return t.trust().is_some();
    }
    match t.trust() {
        Some(Trust::Token { id, .. }) => node
            .tokens
            .find(&id, SystemTime::now())
            .is_some_and(|tok| tok.may_open(service)),
        Some(Trust::Anonymous) => anonymous,
        Some(Trust::Secret) => true,
        // Not established: no stream can have been opened on it.
        None => false,
    }
}

impl Node {
    /// Closes the transports whose token is no longer live.
    pub(crate) fn close_ended_tokens(&self) {
        let now = SystemTime::now();
        for t in self.transports.all() {
            if t.side() == Side::Initiator {
                // A token we present: its issuer ends the transport when it ends.
                continue;
            }
            if let Some(Trust::Token { id, .. }) = t.trust() {
                if !self.tokens.is_live(&id, now) && t.revoked().is_none() {
                    tracing::info!(peer = %t.peer, token = %id, "token revoked or expired: closing its transport");
                    t.revoke("token revoked or expired");
                }
            }
        }
    }

    /// After a reload: closes the transports whose peer proved a secret that is no longer in
    /// `[bus] secret`. The others still authenticate and keep running.
    pub(crate) fn close_rotated_out(&self, cfg: &NodeConfig) {
        let listed: Vec<[u8; 8]> = cfg
            .bus
            .secret
            .iter()
            .chain(&cfg.bus.also_accepted)
            .map(|s| busway_proto::secret_fingerprint(s.expose().as_bytes()))
            .collect();
        for t in self.transports.all() {
            let Some(fp) = t.verified_by() else { continue };
            if !listed.contains(&fp) {
                tracing::info!(peer = %t.peer, node = %busway_proto::clip(&t.node(), 128), "its secret was removed from bus.secret: closing the transport");
                t.revoke("secret no longer accepted");
            }
        }
    }
}

/// Checks the transports against their tokens every [`WATCH_EVERY`], and forgets expired
/// tokens; ends with the node.
pub(crate) fn spawn_token_watch(node: &Arc<Node>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(node) = weak.upgrade() else { return };
            let gone = node.tokens.sweep(SystemTime::now());
            for id in &gone {
                tracing::info!(token = %id, "token expired");
            }
            node.close_ended_tokens();
        }
    });
}

/// The resumption state of a node: with `state_dir`, the ticket key and strike register a
/// clean stop saved there; otherwise (or after a crash) a new key, so no earlier ticket
/// resumes.
///
/// The file is removed once read, and written again only by [`save_resumption`] at a clean
/// stop. A node that crashed therefore finds no file and makes a new key: the tickets it
/// accepted since its last start, whose ids only its lost register knew, cannot be replayed
/// to it.
pub(crate) fn load_resumption(state_dir: Option<&Path>) -> Result<Arc<Resumption>, String> {
    let fresh = || Resumption::new(busway_proto::MAX_TICKET_LIFETIME, STRIKE_CAPACITY);
    let Some(dir) = state_dir else {
        return Ok(Arc::new(fresh()));
    };
    let file = dir.join(RESUMPTION_FILE);
    let Some(bytes) = crate::state_file::take(&file)? else {
        return Ok(Arc::new(fresh()));
    };
    match Resumption::from_bytes(&bytes) {
        Ok(r) => Ok(Arc::new(r)),
        Err(_) => {
            tracing::warn!(file = %file.display(), "resumption state unreadable: starting with a new ticket key (earlier tickets get a full handshake)");
            Ok(Arc::new(fresh()))
        }
    }
}

/// Saves the resumption state into `state_dir` at a clean stop (mode 0600).
pub(crate) fn save_resumption(state_dir: &Path, r: &Resumption) -> Result<PathBuf, String> {
    let file = state_dir.join(RESUMPTION_FILE);
    crate::state_file::write(&file, &r.to_bytes())?;
    Ok(file)
}
