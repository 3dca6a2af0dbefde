//! The token string a holder configures as `[bus] token`: `bwt1_ID_SECRET`, with a 16-digit hex
//! id and a 64-digit hex secret.
//!
//! The id travels in clear in the handshake so the issuing node can find the token; the secret
//! never travels: the holder proves it, as a shared secret is proved. The prefix makes a token
//! recognisable in a leaked file (secret scanners match on it) and versions the format.

use std::fmt::Write;

const PREFIX: &str = "bwt1_";
/// Hex digits of the id (8 random bytes: enough to never collide among live tokens).
pub const ID_HEX: usize = 16;
/// Bytes of the secret (256 bits).
pub const SECRET_BYTES: usize = 32;

/// A token split into what the handshake sends (`id`) and what it proves (`secret`).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenString {
    pub id: String,
    pub secret: [u8; SECRET_BYTES],
}

impl std::fmt::Debug for TokenString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenString({}, <redacted>)", self.id)
    }
}

impl TokenString {
    /// A fresh token with random id and secret.
    pub fn generate() -> TokenString {
        TokenString {
            id: hex(&rand::random::<[u8; ID_HEX / 2]>()),
            secret: rand::random(),
        }
    }

    /// Reads `bwt1_ID_SECRET`; `None` for anything else (the caller says what was expected).
    pub fn parse(s: &str) -> Option<TokenString> {
        let rest = s.trim().strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        if id.len() != ID_HEX || !is_hex(id) || secret.len() != 2 * SECRET_BYTES {
            return None;
        }
        let mut out = [0u8; SECRET_BYTES];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(secret.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(TokenString {
            id: id.to_ascii_lowercase(),
            secret: out,
        })
    }

    /// The string handed out once, in the 201 answer.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, hex(&self.secret))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(crate) fn is_hex(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let t = TokenString::generate();
        let s = t.expose();
        assert!(s.starts_with("bwt1_") && s.len() == 5 + 16 + 1 + 64, "{s}");
        assert_eq!(TokenString::parse(&s), Some(t.clone()));
        assert_ne!(TokenString::generate(), t);
        assert!(!format!("{t:?}").contains(&hex(&t.secret)));
        for bad in [
            "",
            "bwt1_",
            "bwt2_0123456789abcdef_00",
            &s[..s.len() - 1],
            &s.replace("bwt1_", ""),
        ] {
            assert_eq!(TokenString::parse(bad), None, "{bad}");
        }
        let non_hex = format!("bwt1_0123456789abcdeg_{}", "0".repeat(64));
        assert_eq!(TokenString::parse(&non_hex), None);
    }
}
