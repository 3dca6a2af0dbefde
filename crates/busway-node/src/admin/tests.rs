//! The admin application in process: requests go straight to the axum app (no socket), against
//! a real node with a token.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use tower::ServiceExt;

use super::{Admin, Limits};
use crate::node::Node;

const TOKEN: &str = "t0k-for-tests";

fn config() -> busway_config::NodeConfig {
    let toml = format!(
        r#"
[node]
name = "t"
[admin]
listen = "tcp://127.0.0.1:0"
token = "{TOKEN}"
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
backends = ["tcp://127.0.0.1:9"]
"#
    );
    busway_config::parse_toml(&toml, "t.toml").unwrap()
}

async fn node() -> Arc<Node> {
    Node::start(config()).await.unwrap().0
}

fn request(method: &str, target: &str, token: Option<&str>, body: Body) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(target);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(body).unwrap()
}

async fn status(admin: &Admin, req: Request<Body>) -> StatusCode {
    admin.app().oneshot(req).await.unwrap().status()
}

/// The routes that need the token, in their canonical spelling, and some that do not.
const PROTECTED: &[&str] = &[
    "/v1",
    "/v1/services",
    "/v1/sessions",
    "/v1/sessions/abc",
    "/v1/peers",
    "/v1/cluster",
    "/v1/no-such-route",
    "/v1/services/chat/upstreams",
    "/v1/services/chat/upstreams/u1",
    "/v1/services/chat/downstreams/d1/send",
    "/v1/services/chat/broadcast",
    "/upstream/add",
];
const OPEN: &[&str] = &["/", "/healthz", "/readyz", "/metrics"];
const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT"];

/// How a spelling departs from the canonical path.
#[derive(Clone, Debug)]
struct Spelling {
    route: usize,
    method: usize,
    /// Slashes before each segment, 1 to 3.
    slashes: [u8; 8],
    /// A `.` segment before each segment: none, `.`, `%2e` or `%2E`.
    dots: [u8; 8],
    /// Which characters are percent-encoded, and with which hex case.
    encode: u64,
    lower_hex: u64,
    /// Which characters change case (only some spellings).
    flip: Option<u64>,
    trailing_slash: bool,
    /// `..`, `%2F` or `.%2E` put into the path: none, or before which segment.
    poison: Option<(u8, usize)>,
    query: bool,
}

impl Spelling {
    fn canonical(&self) -> &'static str {
        [PROTECTED, OPEN].concat()[self.route]
    }

    fn protected(&self) -> bool {
        self.route < PROTECTED.len()
    }

    /// Whether it still names the canonical route: no letter changed case, nothing poisoned.
    fn faithful(&self) -> bool {
        self.poison.is_none() && !self.flips_a_letter()
    }

    fn flips_a_letter(&self) -> bool {
        let Some(flip) = self.flip else { return false };
        self.canonical()
            .chars()
            .filter(|c| *c != '/')
            .enumerate()
            .any(|(i, c)| c.is_ascii_alphabetic() && (flip >> (i % 64)) & 1 == 1)
    }

    fn spell(&self) -> String {
        let segments: Vec<&str> = self
            .canonical()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut out = String::new();
        let mut bit = 0;
        for (i, seg) in segments.iter().enumerate() {
            let j = i % 8;
            if let Some((kind, at)) = self.poison {
                if at % segments.len().max(1) == i {
                    out.push_str(["/x/..", "/a%2Fb", "/x/.%2E", "/%2e%2e"][kind as usize % 4]);
                }
            }
            out.push_str(&"/".repeat(self.slashes[j] as usize));
            match self.dots[j] % 4 {
                1 => out.push_str("./"),
                2 => out.push_str("%2e/"),
                3 => out.push_str("%2E//"),
                _ => {}
            }
            for c in seg.chars() {
                let c = match self.flip {
                    Some(f) if (f >> (bit % 64)) & 1 == 1 => flip_case(c),
                    _ => c,
                };
                if (self.encode >> (bit % 64)) & 1 == 1 {
                    let e = format!("%{:02X}", c as u32);
                    out.push_str(&if (self.lower_hex >> (bit % 64)) & 1 == 1 {
                        e.to_ascii_lowercase()
                    } else {
                        e
                    });
                } else {
                    out.push(c);
                }
                bit += 1;
            }
        }
        if out.is_empty() || self.trailing_slash {
            out.push('/');
        }
        if self.query {
            out.push_str("?limit=1");
        }
        out
    }
}

fn flip_case(c: char) -> char {
    if c.is_ascii_lowercase() {
        c.to_ascii_uppercase()
    } else {
        c.to_ascii_lowercase()
    }
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        0..PROTECTED.len() + OPEN.len(),
        0..METHODS.len(),
        prop::array::uniform8(1u8..=3),
        prop::array::uniform8(0u8..8),
        any::<u64>(),
        any::<u64>(),
        prop::option::weighted(0.2, any::<u64>()),
        any::<bool>(),
        prop::option::weighted(0.2, (0u8..4, 0usize..8)),
        any::<bool>(),
    )
        .prop_map(
            |(
                route,
                method,
                slashes,
                dots,
                encode,
                lower_hex,
                flip,
                trailing_slash,
                poison,
                query,
            )| {
                Spelling {
                    route,
                    method,
                    slashes,
                    dots,
                    // Most characters stay as they are.
                    encode: encode & encode.rotate_left(17) & encode.rotate_left(41),
                    lower_hex,
                    flip,
                    trailing_slash,
                    poison,
                    query,
                }
            },
        )
}

/// Without the token: exactly the protected routes are 401, whatever their spelling; nothing
/// is ever answered 2xx or 409 for them. With it, a spelling that still names the route gets
/// the canonical spelling's answer, which is not 401.
#[test]
fn the_token_guards_every_spelling_of_the_protected_routes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = Admin::new(rt.block_on(node()));
    let config = ProptestConfig::with_cases(512);
    proptest!(config, |(s in spelling())| {
        let path = s.spell();
        let method = METHODS[s.method];
        let without = rt.block_on(status(&admin, request(method, &path, None, Body::empty())));
        if s.protected() && s.faithful() {
            prop_assert_eq!(without, StatusCode::UNAUTHORIZED, "{} {}", method, path);
        }
        if s.protected() {
            prop_assert!(
                matches!(without.as_u16(), 400 | 401 | 404),
                "{} {} without the token: {}", method, path, without
            );
        }
        if !s.protected() && s.faithful() {
            prop_assert_ne!(without, StatusCode::UNAUTHORIZED, "{} {}", method, path);
        }
        let canonical = rt.block_on(status(
            &admin,
            request(method, s.canonical(), Some(TOKEN), Body::empty()),
        ));
        prop_assert_ne!(canonical, StatusCode::UNAUTHORIZED, "{} {}", method, s.canonical());
        if s.faithful() && !s.query {
            let with = rt.block_on(status(&admin, request(method, &path, Some(TOKEN), Body::empty())));
            prop_assert_eq!(with, canonical, "{} {} with the token", method, path);
        }
    });
}

/// The spellings the issue names, one by one.
#[tokio::test]
async fn known_bypasses_are_closed() {
    let admin = Admin::new(node().await);
    for (method, path, want) in [
        ("GET", "//v1/sessions", 401),
        ("GET", "/./v1/sessions", 401),
        ("GET", "/%76%31/sessions", 401),
        ("GET", "/v1%2Fsessions", 400),
        ("GET", "/v1/../v1/sessions", 400),
        ("POST", "//v1/services/chat/upstreams", 401),
        ("POST", "//upstream/add", 401),
        ("POST", "/upstream//add", 401),
        ("GET", "//healthz", 200),
    ] {
        let got = status(&admin, request(method, path, None, Body::empty())).await;
        assert_eq!(got.as_u16(), want, "{method} {path}");
    }
}

#[tokio::test]
async fn a_body_over_the_cap_is_413_declared_or_not() {
    let admin = Admin::new(node().await);
    let big = vec![b'x'; 1024 * 1024 + 1];
    // No Content-Length header: the cap is found while reading, as for a chunked body.
    let r = request(
        "POST",
        "/upstream/add",
        Some(TOKEN),
        Body::from(big.clone()),
    );
    assert_eq!(status(&admin, r).await, StatusCode::PAYLOAD_TOO_LARGE);
    let mut r = request("POST", "/upstream/add", Some(TOKEN), Body::empty());
    r.headers_mut()
        .insert("content-length", (big.len() as u64).into());
    assert_eq!(status(&admin, r).await, StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly the cap is read (and then refused for what it says, not for its size).
    let r = request(
        "POST",
        "/upstream/add",
        Some(TOKEN),
        Body::from(vec![b'x'; 1024 * 1024]),
    );
    assert_eq!(status(&admin, r).await, StatusCode::BAD_REQUEST);
    // Without the token, the size does not matter: 401 first.
    let r = request("POST", "/upstream/add", None, Body::from(big));
    assert_eq!(status(&admin, r).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_head_over_the_cap_is_413() {
    let admin = Admin::new(node().await);
    let mut r = request("GET", "/healthz", None, Body::empty());
    r.headers_mut()
        .insert("x-filler", "y".repeat(16 * 1024).parse().unwrap());
    assert_eq!(status(&admin, r).await, StatusCode::PAYLOAD_TOO_LARGE);
    let mut r = request("GET", "/healthz", None, Body::empty());
    r.headers_mut()
        .insert("x-filler", "y".repeat(15 * 1024).parse().unwrap());
    assert_eq!(status(&admin, r).await, StatusCode::OK);
}

/// A body that never comes.
struct Silent;

impl http_body::Body for Silent {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        Poll::Pending
    }
}

#[tokio::test]
async fn a_body_that_does_not_come_is_given_up_on() {
    let limits = Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let admin = Admin::with_limits(node().await, limits);
    let r = request("POST", "/upstream/add", Some(TOKEN), Body::new(Silent));
    let t0 = std::time::Instant::now();
    let resp = admin.app().oneshot(r).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["connection"], "close");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn errors_are_json_with_the_contract_codes() {
    let admin = Admin::new(node().await);
    for (method, path, want) in [
        ("GET", "/nothing", 404),
        ("POST", "/healthz", 404),
        ("PUT", "/v1/services", 404),
        ("GET", "/v1/services/nosuch/upstreams", 404),
        ("GET", "/v1/services/chat/upstreams", 404),
        ("GET", "/v1/sessions?limit=x", 400),
        ("GET", "/v1%2F", 400),
    ] {
        let r = admin
            .app()
            .oneshot(request(method, path, Some(TOKEN), Body::empty()))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
    let r = admin
        .app()
        .oneshot(request("GET", "/v1/services", None, Body::empty()))
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn the_status_page_is_served_with_a_strict_policy() {
    let admin = Admin::new(node().await);
    let r = admin
        .app()
        .oneshot(request("GET", "/", None, Body::empty()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-store");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
}
