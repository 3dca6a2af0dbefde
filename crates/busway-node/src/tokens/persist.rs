//! `STATE_DIR/tokens.json`: the live tokens, secrets included, written whole on every change.
//!
//! Written with [`crate::state_file::write`]: a crash leaves either the old list or the new
//! one, never half of either, and no other user can read it.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::string::{hex, is_hex, SECRET_BYTES};
use super::{Token, MAX_TOKENS};

#[derive(Serialize, Deserialize)]
struct Saved {
    id: String,
    node: String,
    services: Vec<String>,
    /// Seconds since the Unix epoch.
    expires_at: u64,
    secret: String,
}

/// The tokens in `file`; none when it does not exist yet.
pub(super) fn load(file: &Path) -> Result<Vec<Token>, String> {
    let what = |e: &dyn std::fmt::Display| format!("{}: {e}", file.display());
    let Some(text) = crate::state_file::read(file)? else {
        return Ok(Vec::new());
    };
    let saved: Vec<Saved> = serde_json::from_slice(&text).map_err(|e| what(&e))?;
    let mut out = Vec::with_capacity(saved.len().min(MAX_TOKENS));
    for s in saved.into_iter().take(MAX_TOKENS) {
        let mut secret = [0u8; SECRET_BYTES];
        if s.secret.len() != 2 * SECRET_BYTES || !is_hex(&s.secret) {
            return Err(what(&format!("token {} has a malformed secret", s.id)));
        }
        for (i, b) in secret.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s.secret[2 * i..2 * i + 2], 16).map_err(|e| what(&e))?;
        }
        out.push(Token {
            id: s.id,
            node: s.node,
            services: s.services,
            expires_at: UNIX_EPOCH + Duration::from_secs(s.expires_at),
            secret,
        });
    }
    Ok(out)
}

/// Replaces `file` with `tokens`.
pub(super) fn save<'a>(file: &Path, tokens: impl Iterator<Item = &'a Token>) -> Result<(), String> {
    let saved: Vec<Saved> = tokens
        .map(|t| Saved {
            id: t.id.clone(),
            node: t.node.clone(),
            services: t.services.clone(),
            expires_at: t
                .expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            secret: hex(&t.secret),
        })
        .collect();
    let text = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
    crate::state_file::write(file, &text)
}
