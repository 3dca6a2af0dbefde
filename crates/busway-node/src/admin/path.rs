//! One spelling per path. The token check and the router must agree on what a request names, or
//! a second spelling of a protected route walks past the check (the old server checked the raw
//! path and routed on a trimmed one, so `//v1/sessions` needed no token). So the path is made
//! canonical once, before the token check, the request's URI is rewritten to it, and every later
//! step and the router see only that.
//!
//! The canonical form (RFC 3986 section 6.2.2, minus what would hide a slash):
//! - repeated slashes collapse to one, and a trailing slash goes (`/v1/services/` is
//!   `/v1/services`, as it always was); the root stays `/`;
//! - percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other
//!   escapes keep their meaning and get upper-case hex digits;
//! - `.` segments (also spelt `%2E`) are dropped;
//! - refused with 400: a `..` segment (however spelt), an escaped slash (`%2F`), a malformed
//!   escape, and a path that does not start with `/` (`OPTIONS *`).
//!
//! Letter case is left alone: paths are case-sensitive, so `/V1/sessions` is simply not a route
//! (404), never a way around the check.

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use super::reply;

/// Why a path is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path has an escaped slash (%2F)")]
    EncodedSlash,
    #[error("the path has a .. segment")]
    DotDot,
    #[error("the path has a malformed percent-escape")]
    BadEscape,
}

/// The canonical form of `raw` (see the module docs).
pub fn normalise(raw: &str) -> Result<String, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath::NotAbsolute);
    }
    let mut out = String::with_capacity(raw.len());
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        let start = out.len();
        out.push('/');
        decode_unreserved(seg, &mut out)?;
        match &out[start + 1..] {
            "." => out.truncate(start),
            ".." => return Err(BadPath::DotDot),
            _ => {}
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Appends `seg` to `out` with escapes of unreserved characters decoded.
fn decode_unreserved(seg: &str, out: &mut String) -> Result<(), BadPath> {
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (Some(hi), Some(lo)) = (chars.next(), chars.next()) else {
            return Err(BadPath::BadEscape);
        };
        let (Some(h), Some(l)) = (hi.to_digit(16), lo.to_digit(16)) else {
            return Err(BadPath::BadEscape);
        };
        match char::from(((h << 4) | l) as u8) {
            '/' => return Err(BadPath::EncodedSlash),
            d if d.is_ascii_alphanumeric() || "-._~".contains(d) => out.push(d),
            _ => {
                out.push('%');
                out.push(hi.to_ascii_uppercase());
                out.push(lo.to_ascii_uppercase());
            }
        }
    }
    Ok(())
}

/// A step of [`super::guard`]: rewrites the URI to its canonical path (keeping the query), or
/// answers 400.
pub(super) fn canonicalise(req: &mut Request) -> Option<Response> {
    let path = match normalise(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return Some(reply::error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    if path == req.uri().path() {
        return None;
    }
    let target = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    // The raw path and query were a valid URI, and canonicalising only removes characters or
    // turns escapes into the unreserved characters they stand for.
    match target.parse::<Uri>() {
        Ok(uri) => {
            *req.uri_mut() = uri;
            None
        }
        Err(_) => Some(reply::error(
            StatusCode::BAD_REQUEST,
            "invalid request target",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spellings() {
        for (raw, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/v1/sessions", "/v1/sessions"),
            ("//v1//sessions/", "/v1/sessions"),
            ("/./v1/./sessions/.", "/v1/sessions"),
            ("/%2e/v1/%2E/sessions", "/v1/sessions"),
            ("/%76%31/sessions", "/v1/sessions"),
            ("/v1/sessions/a%2db%7e", "/v1/sessions/a-b~"),
            ("/v1/sessions/a%20b", "/v1/sessions/a%20b"),
            ("/v1/sessions/%3a%3A", "/v1/sessions/%3A%3A"),
            ("/v1/sessions/...", "/v1/sessions/..."),
            ("/V1/Sessions", "/V1/Sessions"),
        ] {
            assert_eq!(normalise(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refused_spellings() {
        for (raw, why) in [
            ("*", BadPath::NotAbsolute),
            ("v1/sessions", BadPath::NotAbsolute),
            ("/v1%2Fsessions", BadPath::EncodedSlash),
            ("/v1%2fsessions", BadPath::EncodedSlash),
            ("/v1/../v1/sessions", BadPath::DotDot),
            ("/v1/%2e%2E/sessions", BadPath::DotDot),
            ("/v1/.%2e", BadPath::DotDot),
            ("/v1/%", BadPath::BadEscape),
            ("/v1/%4", BadPath::BadEscape),
            ("/v1/%zz", BadPath::BadEscape),
        ] {
            assert_eq!(normalise(raw), Err(why), "{raw}");
        }
    }

    /// Canonicalising twice changes nothing, so no layer can disagree with another about a
    /// path that was canonicalised once.
    #[test]
    fn canonical_is_a_fixed_point() {
        use proptest::prelude::*;
        proptest!(|(raw in "/[a-zA-Z0-9%/._~-]{0,24}")| {
            if let Ok(once) = normalise(&raw) {
                prop_assert_eq!(normalise(&once), Ok(once.clone()));
            }
        });
    }
}
