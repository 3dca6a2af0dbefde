//! The bearer token (CONTRACT section 8): with `admin.token` set, everything under `/v1` and the
//! legacy `/upstream/…` routes (they add upstreams, so they make the node dial) needs
//! `Authorization: Bearer TOKEN`.
//!
//! It guards the whole tree, not route by route: it runs after the path is made canonical and
//! before routing, so a path under `/v1` that is no route is 401 too (the API does not tell a
//! stranger which routes exist), and before any extractor, so no body is read for a request
//! that will be refused.

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::reply;
use crate::node::Node;

/// Whether a canonical path needs the token.
pub fn is_protected(path: &str) -> bool {
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/v1") || under("/upstream")
}

/// Whether `headers` carry exactly one `Authorization` header presenting `token`.
///
/// The scheme name is case-insensitive (RFC 7235 section 2.1). A second `Authorization` header
/// is refused rather than tried, so a request cannot test several guesses at once.
pub fn presents(headers: &HeaderMap, token: &str) -> bool {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return false;
    };
    bearer(value.as_bytes()).is_some_and(|given| same(given, token.as_bytes()))
}

/// The credentials of a `Bearer` authorization value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let credentials = rest.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Compares the SHA-256 digests of both, so the time taken depends on neither the token's
/// length nor on how much of it a guess got right: what leaks is at most where two digests
/// differ, which says nothing about the token.
fn same(given: &[u8], token: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(token));
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A step of [`super::guard`]: 401 for a protected path without the token, while a token is
/// configured. The token is read per request, so a reload that sets, changes or removes it
/// applies at once.
pub(super) fn refuse(node: &Node, req: &Request) -> Option<Response> {
    if !is_protected(req.uri().path()) {
        return None;
    }
    let token = node.admin_token()?;
    (!presents(req.headers(), token.expose()))
        .then(|| reply::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn protected_paths() {
        for p in ["/v1", "/v1/", "/v1/sessions", "/upstream", "/upstream/add"] {
            assert!(is_protected(p), "{p}");
        }
        for p in [
            "/",
            "/healthz",
            "/metrics",
            "/readyz",
            "/v10",
            "/v1x/a",
            "/upstreams",
        ] {
            assert!(!is_protected(p), "{p}");
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive_the_token_is_not() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k"] {
            assert!(presents(&with(&[v]), "t0k"), "{v}");
        }
        for v in [
            "Bearer T0K",
            "Bearer t0k2",
            "Bearer t0",
            "Bearer",
            "Bearer ",
            "Basic t0k",
            "Bearert0k",
            "t0k",
        ] {
            assert!(!presents(&with(&[v]), "t0k"), "{v}");
        }
        assert!(!presents(&HeaderMap::new(), "t0k"));
        assert!(!presents(&with(&["Bearer nope", "Bearer t0k"]), "t0k"));
    }
}
