//! CONTRACT section 8 for the bus core: health, readiness, metrics, services, sessions, peers,
//! kicking a session, the bearer token, and JSON errors.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;

#[test]
fn health_readiness_services_sessions_peers_and_kick() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let admin = chain.ingress.addr("admin");
    assert_eq!(http::get(&admin, "/healthz").status, 200);
    assert_eq!(http::get(&admin, "/healthz").body, "ok");
    assert_eq!(http::get(&admin, "/readyz").status, 200);

    let services = http::get(&admin, "/v1/services");
    assert_eq!(services.status, 200);
    assert!(
        services.body.contains("\"name\":\"chat\""),
        "{}",
        services.body
    );
    assert!(
        services.body.contains("\"mode\":\"one-to-one\""),
        "{}",
        services.body
    );
    assert!(
        services.body.contains(&chain.egress.url("bus")),
        "{}",
        services.body
    );
    assert!(
        services.body.contains("\"state\":\"up\""),
        "{}",
        services.body
    );

    let mut c = chain.client();
    roundtrip(&mut c, b"0123456789");
    let sessions = http::get(&admin, "/v1/sessions").body;
    assert!(sessions.contains("\"service\":\"chat\""), "{sessions}");
    assert!(sessions.contains("\"bytes_in\":10"), "{sessions}");
    assert!(sessions.contains("\"bytes_out\":10"), "{sessions}");
    let id = sessions
        .split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    // Both ends list the session under the same id.
    let egress_sessions = http::get(&chain.egress.addr("admin"), "/v1/sessions").body;
    assert!(egress_sessions.contains(&id), "{egress_sessions}");

    let peers = http::get(&admin, "/v1/peers").body;
    assert!(peers.contains("\"node\":\"egress\""), "{peers}");
    let peers_e = http::get(&chain.egress.addr("admin"), "/v1/peers").body;
    assert!(peers_e.contains("\"node\":\"ingress\""), "{peers_e}");

    let kicked = http::request("DELETE", &admin, &format!("/v1/sessions/{id}"), None, b"");
    assert_eq!(kicked.status, 204);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "kicked client not closed");
    assert_eq!(
        http::request("DELETE", &admin, "/v1/sessions/nope", None, b"").status,
        404
    );
    let unknown = http::get(&admin, "/v1/nothing-here");
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("\"error\""), "{}", unknown.body);

    let metrics = http::get(&admin, "/metrics").body;
    for name in [
        "busway_sessions_active{service=\"chat\"}",
        "busway_sessions_total{service=\"chat\",outcome=\"ok\"}",
        "busway_bytes_total{service=\"chat\",direction=\"in\"}",
        "busway_session_setup_seconds_bucket",
        "busway_peer_transports{peer=\"egress\",state=\"up\"} 1",
        "busway_peer_rtt_seconds{peer=\"egress\"}",
    ] {
        assert!(metrics.contains(name), "missing {name}:\n{metrics}");
    }
    assert!(wait_for(Duration::from_secs(2), || metric(
        &admin,
        "busway_sessions_total{service=\"chat\",outcome=\"ok\"}"
    ) == Some(1.0)));
}

#[test]
fn readyz_names_the_service_without_a_usable_target() {
    let dir = TempDir::new("ready");
    let dead = backends::refusing_addr();
    let cfg = ingress_toml(&format!("tcp://{dead}"), "");
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    let r = http::get(&ingress.addr("admin"), "/readyz");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("chat"), "{}", r.body);
    assert!(r.body.contains(&dead), "{}", r.body);

    // An egress whose backend fails its active health check is not ready either.
    let cfg = egress_toml(
        &format!("tcp://{dead}"),
        "health_check = { interval = \"100ms\", timeout = \"100ms\" }",
    );
    let egress = Proc::run_toml(&dir, "e.toml", &cfg);
    let admin = egress.addr("admin");
    assert!(wait_for(Duration::from_secs(3), || http::get(
        &admin, "/readyz"
    )
    .status
        == 503));
    assert!(http::get(&admin, "/v1/services")
        .body
        .contains("\"state\":\"down\""));
}

#[test]
fn the_bearer_token_guards_v1_but_not_health_or_metrics() {
    let dir = TempDir::new("token");
    let backend = backends::echo();
    let cfg = egress_toml(&backend.url(), "").replace(
        "listen = \"tcp://127.0.0.1:0\"\n",
        "listen = \"tcp://127.0.0.1:0\"\ntoken = \"env:TEST_ADMIN_TOKEN\"\n",
    );
    let path = dir.write("e.toml", &cfg);
    let p = Proc::start_env(
        &["run", "-c", path.to_str().unwrap()],
        &[("TEST_ADMIN_TOKEN", "tok-123")],
    );
    let admin = p.addr("admin");
    assert_eq!(http::get(&admin, "/v1/services").status, 401);
    let wrong = http::request("GET", &admin, "/v1/services", Some("nope"), b"");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("\"error\""));
    let ok = http::request("GET", &admin, "/v1/services", Some("tok-123"), b"");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(http::get(&admin, "/healthz").status, 200);
    assert_eq!(http::get(&admin, "/metrics").status, 200);
    assert!(!p.stderr().contains("tok-123"));
}
