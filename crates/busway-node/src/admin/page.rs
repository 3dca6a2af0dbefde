//! `GET /`: the status page, one self-contained HTML file compiled into the binary, so it needs
//! no install path and always matches the API it reads.
//!
//! Its Content-Security-Policy allows the page's own inline scripts by their SHA-256 hashes
//! (computed here from the file at first use, so editing the page needs no change here) and
//! nothing else: an injected `<script>` or an inline event handler (`onclick=…`) does not run,
//! so the page must attach its handlers from its script. Styles may be inline (`'unsafe-inline'`
//! for `style-src` only: CSS runs no code). Nothing else loads (`default-src 'none'`) but its
//! `fetch`es of `/v1` and `/metrics` (`connect-src 'self'`); it may not be framed, and forms and `<base>` are off.

use std::sync::LazyLock;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const PAGE: &str = include_str!("page/index.html");

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    // Hashes are base64 and the rest is fixed ASCII, so the value is always a valid header.
    HeaderValue::from_str(&policy(PAGE)).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// The policy for `html`.
fn policy(html: &str) -> String {
    let mut script = String::from("'self'");
    for body in inline_scripts(html) {
        let digest = Sha256::digest(body.as_bytes());
        script.push_str(" 'sha256-");
        script.push_str(&base64::engine::general_purpose::STANDARD.encode(digest));
        script.push('\'');
    }
    format!(
        "default-src 'none'; script-src {script}; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The text of every `<script>` element without a `src`, exactly as the browser hashes it:
/// from after the start tag's `>` to before `</script`. HTML comments are skipped: the page's
/// own comment that mentions `<script>` is not an element.
fn inline_scripts(html: &str) -> Vec<&str> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = lower[at..].find("<script").map(|i| at + i) {
        if let Some(comment) = lower[at..open].find("<!--").map(|i| at + i) {
            match lower[comment..].find("-->") {
                Some(end) => {
                    at = comment + end + 3;
                    continue;
                }
                None => break,
            }
        }
        let Some(tag_end) = lower[open..].find('>').map(|i| open + i) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</script").map(|i| tag_end + i) else {
            break;
        };
        if !lower[open..tag_end].contains("src=") {
            out.push(&html[tag_end + 1..close]);
        }
        at = close;
    }
    out
}

pub(super) async fn index() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (CONTENT_SECURITY_POLICY, CSP.clone()),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_allowed_by_hash_and_external_ones_are_not_hashed() {
        let html = "<!doctype html><style>b{}</style><SCRIPT>let a = 1;</SCRIPT>\n\
                    <script src=\"/x.js\"></script><script type=\"module\">go()</script>";
        assert_eq!(inline_scripts(html), ["let a = 1;", "go()"]);
        let p = policy(html);
        // printf 'let a = 1;' | openssl dgst -sha256 -binary | base64
        let a = "xY6QKfH9PRsQnLz56nj6MBwiK5oHg+im1Jkpdp1x/Ck=";
        assert!(
            p.contains(&format!("script-src 'self' 'sha256-{a}' 'sha256-")),
            "{p}"
        );
        let script_src = p
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe-inline"), "{p}");
        assert!(p.starts_with("default-src 'none';"), "{p}");
        assert!(p.contains("connect-src 'self'"), "{p}");
    }

    #[test]
    fn the_page_in_the_binary_gets_a_valid_policy() {
        assert!(CSP.to_str().unwrap().contains("script-src 'self'"));
        assert!(PAGE.to_ascii_lowercase().contains("<title>"));
        // The page has one inline script; a comment that mentions `<script>` must not be taken
        // for one, or the hash would be of the wrong text and the browser would block the page.
        assert_eq!(inline_scripts(PAGE).len(), 1);
        assert!(inline_scripts(PAGE)[0].contains("function"));
    }

    #[test]
    fn a_script_tag_inside_a_comment_is_not_an_element() {
        let html =
            "<!-- allows <script> here --><script>real()</script><!-- <script>x</script> -->";
        assert_eq!(inline_scripts(html), ["real()"]);
        assert!(inline_scripts("<!-- <script>never closed").is_empty());
    }
}
