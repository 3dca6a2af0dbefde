//! Trust levels of CONTRACT section 10 between real nodes: a token-authenticated ingress known
//! by the token's name and limited to its services, revocation and expiry closing its
//! transports, anonymous transports and `anonymous = true` services, forbidden sessions refused
//! before any backend dial, and a reload that drops a secret closing the transports verified by
//! it.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use busway_test_support::backends;
use busway_test_support::http::{self, request};
use busway_test_support::proc::{Proc, TempDir};
use common::*;

const ADMIN: Option<&str> = Some("admin-token-for-trust");

/// An egress with two services, `chat` (anonymous = `anon_chat`) and `mail`, on one backend.
fn issuer(dir: &TempDir, backend: &str, bus: &str) -> Proc {
    issuer_env(dir, backend, bus, &[])
}

/// [`issuer`] with extra environment for the node.
fn issuer_env(dir: &TempDir, backend: &str, bus: &str, env: &[(&str, &str)]) -> Proc {
    let cfg = format!(
        r#"
[node]
name = "issuer"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
token = "admin-token-for-trust"
[bus]
listen = ["tcp://127.0.0.1:0"]
{bus}
[[service]]
name = "chat"
backends = ["{backend}"]
anonymous = true
[[service]]
name = "mail"
backends = ["{backend}"]
"#
    );
    Proc::run_toml_env(dir, "issuer.toml", &cfg, env)
}

/// An ingress that carries `chat` and `mail` to `peer` with `bus` as its `[bus]` section.
fn holder(dir: &TempDir, name: &str, peer: &str, bus: &str) -> Proc {
    holder_env(dir, name, peer, bus, &[])
}

/// [`holder`] with extra environment for the node.
fn holder_env(dir: &TempDir, name: &str, peer: &str, bus: &str, env: &[(&str, &str)]) -> Proc {
    let cfg = format!(
        r#"
[node]
name = "{name}"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
{bus}
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
peers = ["{peer}"]
connect_timeout = "1s"
[[service]]
name = "mail"
listen = ["tcp://127.0.0.1:0"]
peers = ["{peer}"]
connect_timeout = "1s"
"#
    );
    Proc::run_toml_env(dir, &format!("{name}.toml"), &cfg, env)
}

fn listen_addr(p: &Proc, service: &str) -> String {
    p.addr(service)
}

/// The client is closed without a byte, within `limit`.
fn closed_without_a_byte(addr: &str, limit: Duration) {
    let mut c = connect(addr);
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 16];
    let started = Instant::now();
    let n = c
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("not closed within {limit:?}: {e}"));
    assert_eq!(n, 0, "the client got bytes");
    assert!(started.elapsed() < limit);
}

fn issue(admin: &str, body: &str) -> (String, String) {
    let a = request("POST", admin, "/v1/tokens", ADMIN, body.as_bytes());
    assert_eq!(a.status, 201, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    (
        v["id"].as_str().unwrap().into(),
        v["token"].as_str().unwrap().into(),
    )
}

/// An issuer with the test secret, a token for `edge-t` limited to `chat`, and a holder named
/// `name` using it, once its transport is up: (issuer, holder, token id, token).
fn token_pair(
    dir: &TempDir,
    backend: &str,
    name: &str,
    env: &[(&str, &str)],
) -> (Proc, Proc, String, String) {
    let egress = issuer_env(dir, backend, &format!("secret = \"{SECRET}\""), env);
    let (id, token) = issue(
        &egress.addr("admin"),
        r#"{"node": "edge-t", "services": ["chat"], "ttl": "1h"}"#,
    );
    let bus = format!("token = \"{token}\"");
    let ingress = holder_env(dir, name, &egress.url("bus"), &bus, env);
    wait_peer_up(&ingress.addr("admin"));
    (egress, ingress, id, token)
}

fn peers(admin: &str) -> serde_json::Value {
    let body = request("GET", admin, "/v1/peers", ADMIN, b"").body;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn forbidden(admin: &str, service: &str) -> f64 {
    metric(
        admin,
        &format!("busway_sessions_total{{service=\"{service}\",outcome=\"forbidden\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn a_token_holder_is_known_by_its_name_and_reaches_only_its_services_until_revoked() {
    let dir = TempDir::new("trust-token");
    let backend = backends::echo();
    let (egress, ingress, id, token) =
        token_pair(&dir, &backend.url(), "calls-itself-something-else", &[]);
    let admin_e = egress.addr("admin");
    let admin_i = ingress.addr("admin");

    let mut c = connect(&listen_addr(&ingress, "chat"));
    roundtrip(&mut c, b"through a token");
    let p = peers(&admin_e);
    assert_eq!(p[0]["node"], "edge-t", "{p}");
    assert_eq!(p[0]["trust"], "token", "{p}");
    assert_eq!(peers(&admin_i)[0]["trust"], "token");

    let before = backend.accepted();
    closed_without_a_byte(&listen_addr(&ingress, "mail"), Duration::from_secs(2));
    assert!(wait_for(Duration::from_secs(2), || forbidden(
        &admin_e, "mail"
    ) == 1.0));
    assert!(wait_for(Duration::from_secs(2), || forbidden(
        &admin_i, "mail"
    ) == 1.0));
    assert_eq!(
        backend.accepted(),
        before,
        "a forbidden session dialled the backend"
    );

    let log_has_token = |p: &Proc| p.stderr().contains(&token);
    assert_eq!(
        request("DELETE", &admin_e, &format!("/v1/tokens/{id}"), ADMIN, b"").status,
        204
    );
    let revoked = Instant::now();
    // Its transport closes within a second, and so does the session on it.
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    assert!(
        revoked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        revoked.elapsed()
    );
    // New transports are refused with reason token.
    assert!(wait_for(Duration::from_secs(3), || {
        metric(
            &admin_e,
            "busway_handshake_failures_total{reason=\"token\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    }));
    assert!(!log_has_token(&egress) && !log_has_token(&ingress));
}

/// CONTRACT section 10: secrets and tokens never reach a log, at any level. Every node here logs
/// at trace, every crate included: the issuer with a secret, a token holder, and a node with a
/// wrong secret, through a session, a refused service and a failed handshake.
#[test]
fn secrets_and_tokens_never_reach_trace_level_logs() {
    const WRONG: &str = "a-wrong-secret-of-enough-length";
    let trace = [("RUST_LOG", "trace")];
    let dir = TempDir::new("trust-trace");
    let backend = backends::echo();
    let (egress, ingress, _, token) = token_pair(&dir, &backend.url(), "holder", &trace);
    let admin_e = egress.addr("admin");
    let mut c = connect(&listen_addr(&ingress, "chat"));
    roundtrip(&mut c, b"through a token at trace");
    closed_without_a_byte(&listen_addr(&ingress, "mail"), Duration::from_secs(2));
    let wrong = holder_env(
        &dir,
        "wrong",
        &egress.url("bus"),
        &format!("secret = \"{WRONG}\""),
        &trace,
    );
    assert!(wait_for(Duration::from_secs(5), || metric(
        &admin_e,
        "busway_handshake_failures_total{reason=\"auth\"}"
    )
    .is_some_and(|v| v >= 1.0)));
    for (who, p) in [("issuer", &egress), ("holder", &ingress), ("wrong", &wrong)] {
        // The level really is that verbose: busway's own lines go down to debug (it writes
        // none at trace), and they are there.
        assert!(
            p.wait_stderr(" DEBUG ", Duration::from_secs(2)),
            "{who} wrote no debug line"
        );
        let log = p.stderr();
        for (what, value) in [
            ("secret", SECRET),
            ("token", &token),
            ("wrong secret", WRONG),
        ] {
            assert!(!log.contains(value), "the {what} is in {who}'s trace log");
        }
    }
}

#[test]
fn an_expired_token_closes_its_transports() {
    let dir = TempDir::new("trust-expiry");
    let backend = backends::echo();
    let egress = issuer(&dir, &backend.url(), &format!("secret = \"{SECRET}\""));
    let admin_e = egress.addr("admin");
    let (_, token) = issue(
        &admin_e,
        r#"{"node": "edge-x", "services": ["chat", "mail"], "ttl": "2s"}"#,
    );
    let issued = Instant::now();
    let ingress = holder(
        &dir,
        "edge-x",
        &egress.url("bus"),
        &format!("token = \"{token}\""),
    );
    wait_peer_up(&ingress.addr("admin"));
    let mut c = connect(&listen_addr(&ingress, "mail"));
    roundtrip(&mut c, b"before expiry");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    let closed = issued.elapsed();
    assert!(
        closed >= Duration::from_millis(1500) && closed < Duration::from_millis(3200),
        "closed after {closed:?}"
    );
    assert!(http::get(&admin_e, "/v1/tokens").status == 401);
    assert_eq!(
        request("GET", &admin_e, "/v1/tokens", ADMIN, b"").body,
        "[]"
    );
}

#[test]
fn anonymous_transports_open_only_anonymous_services() {
    let dir = TempDir::new("trust-anon");
    let backend = backends::echo();
    let egress = issuer(
        &dir,
        &backend.url(),
        &format!("secret = \"{SECRET}\"\nanonymous = true"),
    );
    let admin_e = egress.addr("admin");
    let ingress = holder(&dir, "stranger", &egress.url("bus"), "");
    wait_peer_up(&ingress.addr("admin"));
    let mut c = connect(&listen_addr(&ingress, "chat"));
    roundtrip(&mut c, b"anonymous and allowed");
    assert_eq!(peers(&admin_e)[0]["trust"], "anonymous");
    let before = backend.accepted();
    closed_without_a_byte(&listen_addr(&ingress, "mail"), Duration::from_secs(2));
    assert!(wait_for(Duration::from_secs(2), || forbidden(
        &admin_e, "mail"
    ) == 1.0));
    assert_eq!(backend.accepted(), before);

    // Without `anonymous = true` the same peer is refused at the handshake (auth).
    let strict = issuer(&dir, &backend.url(), &format!("secret = \"{SECRET}\""));
    let other = holder(&dir, "stranger2", &strict.url("bus"), "");
    assert!(wait_for(Duration::from_secs(3), || {
        metric(
            &strict.addr("admin"),
            "busway_handshake_failures_total{reason=\"auth\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    }));
    closed_without_a_byte(&listen_addr(&other, "chat"), Duration::from_secs(3));
}

#[test]
fn a_reload_that_drops_a_secret_closes_the_transports_it_verified() {
    let dir = TempDir::new("trust-rotate");
    let backend = backends::echo();
    let old = "the-old-secret-of-this-test";
    let new = "the-new-secret-of-this-test";
    let bus = |list: &str| format!("secret = {list}");
    let egress = issuer(
        &dir,
        &backend.url(),
        &bus(&format!("[\"{new}\", \"{old}\"]")),
    );
    let ingress = holder(
        &dir,
        "ingress",
        &egress.url("bus"),
        &bus(&format!("[\"{old}\", \"{new}\"]")),
    );
    wait_peer_up(&ingress.addr("admin"));
    let mut c = connect(&listen_addr(&ingress, "chat"));
    roundtrip(&mut c, b"proved the old one");

    // Keeping the old secret listed keeps the transport.
    let keep = std::fs::read_to_string(dir.path("issuer.toml")).unwrap();
    dir.write(
        "issuer.toml",
        &keep.replace(
            &format!("[\"{new}\", \"{old}\"]"),
            &format!("[\"{old}\", \"{new}\"]"),
        ),
    );
    egress.signal(1);
    std::thread::sleep(Duration::from_millis(700));
    roundtrip(&mut c, b"still there");

    // Dropping it closes the transport the ingress verified with it, and its session.
    dir.write(
        "issuer.toml",
        &keep.replace(&format!("[\"{new}\", \"{old}\"]"), &format!("\"{new}\"")),
    );
    egress.signal(1);
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "the transport survived the rotation"
    );
    // The ingress redials, now proving... its first, the old one: refused until it rotates.
    let admin_e = egress.addr("admin");
    assert!(wait_for(Duration::from_secs(3), || {
        metric(&admin_e, "busway_handshake_failures_total{reason=\"auth\"}").unwrap_or(0.0) >= 1.0
    }));
}
