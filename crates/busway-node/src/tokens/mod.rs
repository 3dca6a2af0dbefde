//! Tokens this node issues (CONTRACT section 10): `POST /v1/tokens` makes one for a named node
//! and a list of services, the holder presents it instead of a bus secret, and revocation or
//! expiry ends it. With `[node] state_dir` they are kept in `tokens.json` there.
//!
//! The store keeps each token's secret (the handshake needs it to check the holder's proof, as
//! it needs the shared secret) and hands it out nowhere but the 201 answer that issued it.

mod persist;
pub mod rfc3339;
mod string;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use string::TokenString;

/// Live tokens kept at most, so the admin API cannot be used to fill memory or the disk.
pub const MAX_TOKENS: usize = 10_000;
/// Longest `ttl` a token may be issued with.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// One issued token, secret included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    /// The name its holder is known by, whatever it calls itself.
    pub node: String,
    /// The only services its holder may open.
    pub services: Vec<String>,
    pub expires_at: SystemTime,
    pub(crate) secret: [u8; string::SECRET_BYTES],
}

impl Token {
    /// The secret the holder proves in the handshake.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    pub fn may_open(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }
}

/// A token as `GET /v1/tokens` lists it: everything but the secret.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TokenView {
    pub id: String,
    pub node: String,
    pub services: Vec<String>,
    pub expires_at: String,
}

impl From<&Token> for TokenView {
    fn from(t: &Token) -> TokenView {
        TokenView {
            id: t.id.clone(),
            node: t.node.clone(),
            services: t.services.clone(),
            expires_at: rfc3339::format(t.expires_at),
        }
    }
}

/// Why a token was not issued; each is a 400 or 409 of the API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IssueError {
    #[error("{0}")]
    Invalid(String),
    #[error("this node holds {MAX_TOKENS} live tokens already; revoke some first")]
    Full,
    #[error("cannot save the tokens in the state directory: {0}")]
    Persist(String),
}

/// The live tokens, and where they are saved.
pub struct Tokens {
    live: Mutex<HashMap<String, Token>>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for Tokens {
    /// The count only: a token's secret must not reach a log through a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} live)", self.lock().len())
    }
}

impl Tokens {
    /// A store kept in memory only.
    pub fn in_memory() -> Tokens {
        Tokens {
            live: Mutex::new(HashMap::new()),
            file: None,
        }
    }

    /// A store saved in `dir/tokens.json`, loaded from it when it exists (expired tokens left
    /// out). A file that cannot be read or parsed is an error: starting without the tokens it
    /// holds would lock their holders out silently.
    pub fn open(dir: &std::path::Path) -> Result<Tokens, String> {
        let file = dir.join("tokens.json");
        let loaded = persist::load(&file)?;
        let now = SystemTime::now();
        let live = loaded
            .into_iter()
            .filter(|t| t.expires_at > now)
            .map(|t| (t.id.clone(), t))
            .collect();
        Ok(Tokens {
            live: Mutex::new(live),
            file: Some(file),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a token; the returned string is the only copy of it anyone gets.
    pub fn issue(
        &self,
        node: &str,
        services: Vec<String>,
        ttl: Duration,
    ) -> Result<(Token, TokenString), IssueError> {
        validate(node, &services, ttl)?;
        let mut live = self.lock();
        let now = SystemTime::now();
        live.retain(|_, t| t.expires_at > now);
        if live.len() >= MAX_TOKENS {
            return Err(IssueError::Full);
        }
        let ts = loop {
            let ts = TokenString::generate();
            if !live.contains_key(&ts.id) {
                break ts;
            }
        };
        let token = Token {
            id: ts.id.clone(),
            node: node.to_string(),
            services,
            expires_at: now + ttl,
            secret: ts.secret,
        };
        live.insert(token.id.clone(), token.clone());
        if let Err(e) = self.save(&live) {
            live.remove(&token.id);
            return Err(IssueError::Persist(e));
        }
        Ok((token, ts))
    }

    /// Revokes `id`; false when no live token has it.
    pub fn revoke(&self, id: &str) -> Result<bool, String> {
        let mut live = self.lock();
        let Some(t) = live.remove(id) else {
            return Ok(false);
        };
        if let Err(e) = self.save(&live) {
            live.insert(t.id.clone(), t);
            return Err(e);
        }
        Ok(true)
    }

    /// The live token `id`, if it is live at `now`.
    pub fn find(&self, id: &str, now: SystemTime) -> Option<Token> {
        self.lock().get(id).filter(|t| t.expires_at > now).cloned()
    }

    /// Whether `id` is still live: what a transport authenticated by it checks.
    pub fn is_live(&self, id: &str, now: SystemTime) -> bool {
        self.lock().get(id).is_some_and(|t| t.expires_at > now)
    }

    /// Every live token, soonest to expire first.
    pub fn list(&self) -> Vec<TokenView> {
        let now = SystemTime::now();
        let live = self.lock();
        let mut v: Vec<&Token> = live.values().filter(|t| t.expires_at > now).collect();
        v.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
        v.into_iter().map(TokenView::from).collect()
    }

    /// Forgets tokens expired at `now` and saves the rest; returns their ids.
    pub fn sweep(&self, now: SystemTime) -> Vec<String> {
        let mut live = self.lock();
        let gone: Vec<String> = live
            .values()
            .filter(|t| t.expires_at <= now)
            .map(|t| t.id.clone())
            .collect();
        if !gone.is_empty() {
            live.retain(|_, t| t.expires_at > now);
            if let Err(e) = self.save(&live) {
                tracing::warn!(error = %e, "cannot save the tokens after their expiry");
            }
        }
        gone
    }

    fn save(&self, live: &HashMap<String, Token>) -> Result<(), String> {
        match &self.file {
            Some(f) => persist::save(f, live.values()),
            None => Ok(()),
        }
    }
}

fn validate(node: &str, services: &[String], ttl: Duration) -> Result<(), IssueError> {
    let bad = |m: String| Err(IssueError::Invalid(m));
    if let Err(e) = busway_config::validate_name(node) {
        return bad(format!("invalid node name: {e}"));
    }
    if services.is_empty() {
        return bad("`services` must list at least one service".into());
    }
    for s in services {
        if let Err(e) = busway_config::validate_name(s) {
            return bad(format!(
                "invalid service name \"{}\": {e}",
                busway_proto::clip(s, 64)
            ));
        }
    }
    if ttl.is_zero() || ttl > MAX_TTL {
        return bad("`ttl` must be more than 0s and at most 8784h (366 days)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn issue_find_list_revoke() {
        let store = Tokens::in_memory();
        let (t, ts) = store
            .issue("edge-b", svc(&["chat"]), Duration::from_secs(3600))
            .unwrap();
        assert_eq!(ts.id, t.id);
        let now = SystemTime::now();
        assert_eq!(store.find(&t.id, now).unwrap().secret(), &ts.secret);
        assert!(store.find(&t.id, now).unwrap().may_open("chat"));
        assert!(!store.find(&t.id, now).unwrap().may_open("admin"));
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert!(!serde_json::to_string(&listed)
            .unwrap()
            .contains(&string::hex(&ts.secret)));
        assert_eq!(store.revoke(&t.id), Ok(true));
        assert_eq!(store.revoke(&t.id), Ok(false));
        assert!(store.find(&t.id, now).is_none());
        assert!(store.list().is_empty());
    }

    #[test]
    fn expiry_hides_and_sweeps() {
        let store = Tokens::in_memory();
        let (t, _) = store
            .issue("n", svc(&["s"]), Duration::from_secs(1))
            .unwrap();
        let later = SystemTime::now() + Duration::from_secs(2);
        assert!(store.find(&t.id, later).is_none());
        assert!(!store.is_live(&t.id, later));
        assert_eq!(store.sweep(later), vec![t.id.clone()]);
        assert!(store.sweep(later).is_empty());
    }

    #[test]
    fn bad_requests_are_refused() {
        let store = Tokens::in_memory();
        let hour = Duration::from_secs(3600);
        for (node, services, ttl) in [
            ("", svc(&["s"]), hour),
            ("n", svc(&[]), hour),
            ("n", svc(&["bad name"]), hour),
            ("n", svc(&["s"]), Duration::ZERO),
            ("n", svc(&["s"]), MAX_TTL + Duration::from_secs(1)),
        ] {
            assert!(matches!(
                store.issue(node, services, ttl),
                Err(IssueError::Invalid(_))
            ));
        }
    }

    #[test]
    fn tokens_survive_a_restart_in_the_state_dir() {
        let dir = std::env::temp_dir().join(format!("busway-tokens-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let (t, ts) = {
            let store = Tokens::open(&dir).unwrap();
            let kept = store
                .issue("a", svc(&["s"]), Duration::from_secs(60))
                .unwrap();
            let (gone, _) = store
                .issue("b", svc(&["s"]), Duration::from_secs(60))
                .unwrap();
            store.revoke(&gone.id).unwrap();
            kept
        };
        let again = Tokens::open(&dir).unwrap();
        let found = again.find(&t.id, SystemTime::now()).unwrap();
        assert_eq!(found.secret(), &ts.secret);
        assert_eq!(again.list().len(), 1, "the revoked one stays revoked");
        std::fs::write(dir.join("tokens.json"), "not json").unwrap();
        let Err(e) = Tokens::open(&dir) else {
            panic!("a corrupt tokens.json was accepted")
        };
        assert!(e.contains("tokens.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
