//! CONTRACT section 8 for the bus core: health, readiness, metrics, services, sessions, peers,
//! kicking a session, the bearer token, and JSON errors.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

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

/// An egress node in front of an echo backend, its admin API guarded by `token` if given.
struct Egress {
    _backend: backends::Backend,
    _dir: TempDir,
    node: Proc,
}

impl Egress {
    fn start(tag: &str, token: Option<&str>) -> Egress {
        let backend = backends::echo();
        let dir = TempDir::new(tag);
        let mut cfg = egress_toml(&backend.url(), "");
        if let Some(t) = token {
            cfg = cfg.replace(
                "listen = \"tcp://127.0.0.1:0\"\n",
                &format!("listen = \"tcp://127.0.0.1:0\"\ntoken = \"{t}\"\n"),
            );
        }
        let node = Proc::run_toml(&dir, "e.toml", &cfg);
        Egress {
            _backend: backend,
            _dir: dir,
            node,
        }
    }

    fn admin(&self) -> String {
        self.node.addr("admin")
    }
}

#[test]
fn keep_alive_answers_several_requests_on_one_connection() {
    let e = Egress::start("keepalive", None);
    let mut c = http::Client::connect(&e.admin());
    for path in [
        "/healthz",
        "/v1/sessions",
        "/metrics",
        "/v1/services",
        "/healthz",
    ] {
        let a = c.request("GET", path, &[], b"");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    assert_eq!(c.request("GET", "/healthz", &[], b"").body, "ok");
    // Pipelined: both written before either is read, answered in order.
    assert!(
        c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
    );
    assert_eq!(c.answer().map(|a| a.status), Some(200));
    assert_eq!(c.answer().map(|a| a.status), Some(404));
    // `Connection: close` is honoured: the answer, then the end.
    let a = c.request("GET", "/healthz", &["Connection: close"], b"");
    assert_eq!(a.status, 200);
    assert!(c
        .closed_within(Instant::now(), Duration::from_secs(2))
        .is_some());
}

#[test]
fn no_spelling_of_a_protected_path_gets_past_the_token() {
    let e = Egress::start("spellings", Some("tok-123"));
    let admin = e.admin();
    for (method, path) in [
        ("GET", "//v1/sessions"),
        ("GET", "/./v1/sessions"),
        ("GET", "/v1/./sessions"),
        ("GET", "/%2e/v1/sessions"),
        ("GET", "/%76%31/sessions"),
        ("GET", "/v1%2Fsessions"),
        ("GET", "/%2Fv1/sessions"),
        ("GET", "/v1/../v1/sessions"),
        ("GET", "/x/../v1/sessions"),
        ("GET", "/v1/sessions/"),
        ("GET", "///v1///services//"),
        ("DELETE", "//v1/sessions/abc"),
        ("POST", "//v1/services/chat/upstreams"),
        ("POST", "//upstream/add"),
        ("POST", "/upstream//add"),
    ] {
        let a = http::request(
            method,
            &admin,
            path,
            None,
            b"{\"host\":\"127.0.0.1\",\"port\":1}",
        );
        assert!(
            a.status == 401 || a.status == 400,
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        assert!(a.body.contains("\"error\""), "{method} {path}: {}", a.body);
        if a.status == 401 {
            assert_eq!(
                a.header("www-authenticate"),
                Some("Bearer"),
                "{method} {path}"
            );
        }
    }
    // The same spellings with the token reach the route.
    let ok = http::request("GET", &admin, "//v1//sessions/", Some("tok-123"), b"");
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn the_bearer_scheme_is_case_insensitive_the_token_is_not() {
    let e = Egress::start("bearer", Some("Tok-123"));
    let mut c = http::Client::connect(&e.admin());
    for (auth, want) in [
        ("Authorization: Bearer Tok-123", 200),
        ("Authorization: bearer Tok-123", 200),
        ("Authorization: BEARER Tok-123", 200),
        ("Authorization: Bearer tok-123", 401),
        ("Authorization: Bearer Tok-1234", 401),
        ("Authorization: Basic Tok-123", 401),
        ("Authorization: Tok-123", 401),
    ] {
        let a = c.request("GET", "/v1/services", &[auth], b"");
        assert_eq!(a.status, want, "{auth}: {}", a.body);
    }
}

#[test]
fn bodies_over_1_mib_are_413_declared_or_chunked() {
    let e = Egress::start("body", None);
    let admin = e.admin();
    // Declared: refused before the body is read, and the answer survives the unread body.
    let big = vec![b'x'; 1024 * 1024 + 1];
    let a = http::request("POST", &admin, "/upstream/add", None, &big);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.body.contains("\"error\""), "{}", a.body);

    // Chunked within the cap is read and parsed (this node has no gateway: 404 says so).
    let json = b"{\"host\":\"127.0.0.1\",\"port\":1}";
    let mut c = http::Client::connect(&admin);
    let mut req =
        b"POST /upstream/add HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in json.chunks(7) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert!(c.send(&req));
    let a = c.answer().expect("an answer");
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.body.contains("no gRPC gateway"), "{}", a.body);

    // Chunked over the cap: 413 once the cap is passed.
    let mut c = http::Client::connect(&admin);
    assert!(c.send(b"POST /upstream/add HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"));
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        for _ in 0..17 {
            if w.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let a = c.answer().expect("an answer");
    assert_eq!(a.status, 413, "{}", a.body);
    writer.join().unwrap();

    // A head over 16 KiB is 413 too.
    let mut c = http::Client::connect(&admin);
    let filler = format!("X-Filler: {}", "y".repeat(17 * 1024));
    assert_eq!(c.request("GET", "/healthz", &[&filler], b"").status, 413);
}

/// The contract's 10 s: a head that trickles in and never ends, and a kept-alive connection
/// that sends nothing more, are both closed then (and not much earlier).
#[test]
fn connections_that_send_no_whole_request_are_closed_after_10_s() {
    let e = Egress::start("slowloris", None);
    let admin = e.admin();
    let a2 = admin.clone();
    let idle = std::thread::spawn(move || {
        let mut c = http::Client::connect(&a2);
        assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200);
        c.closed_within(Instant::now(), Duration::from_secs(15))
    });
    let t0 = Instant::now();
    let mut c = http::Client::connect(&admin);
    assert!(c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\n"));
    let closed = loop {
        if c.closed_within(Instant::now(), Duration::from_millis(500))
            .is_some()
        {
            break Some(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(15) || !c.send(b"X-Slow: 1\r\n") {
            break None;
        }
    };
    for (what, after) in [("slowloris", closed), ("idle", idle.join().unwrap())] {
        let after = after.unwrap_or_else(|| panic!("{what} connection still open after 15 s"));
        assert!(
            after >= Duration::from_secs(9) && after <= Duration::from_secs(12),
            "{what} connection closed after {after:?}"
        );
    }
}

/// A client that pipelines requests and reads none of the answers stalls only itself, and is
/// dropped once its answers have made no progress for 10 s.
#[test]
fn a_client_that_never_reads_stalls_only_itself() {
    let e = Egress::start("noread", None);
    let admin = e.admin();
    let answer_len = http::get(&admin, "/metrics").body.len() + 200;
    // Enough answers to fill the node's send buffer (at most tcp_wmem's maximum) three times.
    let wmem: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    let n = (3 * wmem / answer_len).max(2000);

    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = admin.parse().unwrap();
    sock.connect(&addr.into()).unwrap();
    let stream: std::net::TcpStream = sock.into();
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.set_write_timeout(Some(Duration::from_secs(20))).ok();
        let req = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".repeat(n);
        let _ = w.write_all(&req);
    });
    std::thread::sleep(Duration::from_millis(500));
    let stalled_at = Instant::now();
    for i in 0..50 {
        let t = Instant::now();
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            "/v1/sessions"
        };
        assert_eq!(http::get(&admin, path).status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            t.elapsed()
        );
    }
    // Past the stall limit, reading shows the connection was ended: far fewer than n answers.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(stalled_at.elapsed()));
    let mut r = http::Client::over(stream, &admin);
    r.stream.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let mut answered = 0;
    while r.answer().is_some() {
        answered += 1;
    }
    assert!(
        answered < n,
        "all {n} answers were kept for a client that did not read"
    );
    writer.join().unwrap();
}

#[test]
fn sessions_can_be_paged_youngest_first() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let admin = chain.ingress.addr("admin");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = chain.client();
        roundtrip(&mut c, b"hi");
        clients.push(c);
        std::thread::sleep(Duration::from_millis(20));
    }
    let list = |path: &str| {
        let a = http::get(&admin, path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        let total = a.header("x-total-count").map(str::to_string);
        (v.as_array().cloned().unwrap_or_default(), total)
    };
    let (all, total) = list("/v1/sessions");
    assert_eq!((all.len(), total.as_deref()), (3, Some("3")));
    let (page, total) = list("/v1/sessions?limit=2");
    assert_eq!((page.len(), total.as_deref()), (2, Some("3")));
    let ages: Vec<u64> = page.iter().map(|s| s["age_ms"].as_u64().unwrap()).collect();
    assert!(ages[0] <= ages[1], "not youngest first: {ages:?}");
    let oldest = all
        .iter()
        .max_by_key(|s| s["age_ms"].as_u64())
        .map(|s| s["id"].clone())
        .unwrap();
    assert!(
        page.iter().all(|s| s["id"] != oldest),
        "the oldest session is on the first page: {page:?}"
    );
    let (rest, total) = list("/v1/sessions?limit=2&offset=2");
    assert_eq!((rest.len(), total.as_deref()), (1, Some("3")));
    assert_eq!(rest[0]["id"], oldest);
    assert_eq!(http::get(&admin, "/v1/sessions?limit=two").status, 400);
    drop(clients);
}
