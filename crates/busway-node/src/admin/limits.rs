//! What one admin request may cost (CONTRACT section 10): a head of 16 KiB, a body of 1 MiB
//! (chunked or not), 10 s to send a request, and a client that stops reading its answer is
//! dropped after 10 s without progress.
//!
//! Where each is enforced:
//! - the head: hyper reads at most [`HARD_HEAD`] (a larger head gets hyper's own 431 and the
//!   connection is closed: it cannot be parsed, so there is no request to answer in JSON); a
//!   head between `max_head` and that is answered 413 in JSON by [`refuse_head`], the first
//!   check of every request;
//! - the body: [`super::body`] (413, before reading when `Content-Length` says so);
//! - the time to send a head: hyper's `header_read_timeout`, which runs from the moment the
//!   connection waits for a request (after it opens or after the previous answer), so it is also
//!   the keep-alive idle timeout; the body then has `request_timeout` of its own;
//! - the time to take an answer: [`super::stall`].

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::reply;

/// The largest head hyper will read at all; see the module docs.
pub const HARD_HEAD: usize = 64 * 1024;

/// The limits of one admin server. [`Limits::default`] is the contract's; tests shorten the
/// times.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line and headers, in bytes (at most [`HARD_HEAD`]).
    pub max_head: usize,
    /// Request body, in bytes.
    pub max_body: usize,
    /// To send a head, from when the connection is idle; then again to send the body.
    pub request_timeout: Duration,
    /// How long a write may make no progress before the connection is dropped.
    pub write_stall: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            write_stall: Duration::from_secs(10),
        }
    }
}

/// The size of the head as sent, less any optional whitespace around header values (which
/// hyper drops before we see it): request line, header lines and the empty line.
fn head_len(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + req.uri().scheme_str().map_or(0, |s| s.len() + 3)
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

/// The first step of [`super::guard`]: 413 for a head over `max_head`.
pub(super) fn refuse_head(req: &Request, limits: &Limits) -> Option<Response> {
    (head_len(req) > limits.max_head).then(|| {
        reply::error_closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request head over {} bytes", limits.max_head),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_len_counts_what_was_sent() {
        let req = Request::builder()
            .method("GET")
            .uri("/v1/sessions?limit=5")
            .header("host", "a:1")
            .header("x-long", "y".repeat(100))
            .body(axum::body::Body::empty())
            .unwrap();
        let sent = "GET /v1/sessions?limit=5 HTTP/1.1\r\nhost: a:1\r\nx-long: ".len() + 100 + 4;
        assert_eq!(head_len(&req), sent);
    }
}
