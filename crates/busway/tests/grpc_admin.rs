//! The gateway's admin API: upstreams listed, added (also by the legacy route), drained and
//! removed; downstreams listed, written to and kicked; bad requests; and the gateway's metrics.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::grpc::{calls_ended, calls_started, up_url, upstream, Gateway};
use common::{connect, http, metric, read_n, wait_for};
use serde_json::Value;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn upstreams_are_added_drained_and_removed_without_dropping_clients() {
    let a = upstream(&["--mode", "echo", "--tag", "A:"]);
    let b = upstream(&["--mode", "echo", "--tag", "B:"]);
    let c_up = upstream(&["--mode", "echo", "--tag", "C:"]);
    let gw = Gateway::start(&[up_url(&a)], "", 1);
    let admin = gw.admin();
    let mut client = connect(&gw.addr());
    client.write_all(b"m").unwrap();
    assert_eq!(read_n(&mut client, 3), b"A:m");

    // Add B through the API.
    let body = format!("{{\"address\":\"{}\"}}", up_url(&b));
    let r = http::request(
        "POST",
        &admin,
        "/v1/services/plex/upstreams",
        None,
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let b_id = json(&r.body)["id"].as_str().unwrap().to_string();
    // The same address again is a conflict.
    let r = http::request(
        "POST",
        &admin,
        "/v1/services/plex/upstreams",
        None,
        body.as_bytes(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(json(&r.body)["error"].as_str().unwrap().contains(&b_id));
    // Add C through the legacy route.
    let port = up_url(&c_up).rsplit(':').next().unwrap().to_string();
    let legacy = format!(
        "{{\"host\":\"127.0.0.1\",\"port\":{port},\"alive_timeout\":3,\"ready_timeout\":1}}"
    );
    let r = http::request("POST", &admin, "/upstream/add", None, legacy.as_bytes());
    assert_eq!(r.status, 201, "{}", r.body);
    gw.wait_healthy(3);

    // Drain A: the client moves (to B or C) and keeps its connection.
    let a_id = gw.upstreams()[0]["id"].as_str().unwrap().to_string();
    let r = http::request(
        "DELETE",
        &admin,
        &format!("/v1/services/plex/upstreams/{a_id}"),
        None,
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let ups = gw.upstreams();
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert!(ups.iter().all(|u| u["id"] != a_id.as_str()));
    client.write_all(b"m").unwrap();
    let reply = read_n(&mut client, 3);
    assert!(reply == b"B:m" || reply == b"C:m", "{reply:?}");
    let r = http::request(
        "DELETE",
        &admin,
        &format!("/v1/services/plex/upstreams/{a_id}"),
        None,
        b"",
    );
    assert_eq!(r.status, 404);
    // A's call was closed cleanly: the gateway ended it after sending everything, and no new
    // one started.
    assert!(
        wait_for(Duration::from_secs(5), || calls_ended(&a) == [1]),
        "{:?}",
        a.stdout_lines()
    );
    assert_eq!(calls_started(&a), [1]);
}

#[test]
fn downstreams_are_listed_written_to_and_kicked() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let admin = gw.admin();
    let mut c = connect(&gw.addr());
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut c, 5), b"hello");
    let d = gw.wait_downstreams(1).remove(0);
    let uuid = d["uuid"].as_str().unwrap().to_string();
    assert_eq!(d["bytes_in"], 5);
    assert_eq!(d["bytes_out"], 5);
    assert_eq!(d["active"], true);
    assert_eq!(d["upstream"], gw.upstreams()[0]["id"]);
    let local = c.local_addr().unwrap().to_string();
    assert_eq!(d["client"], local.as_str());

    let send = format!("/v1/services/plex/downstreams/{uuid}/send");
    let r = http::request("POST", &admin, &send, None, b"\x00binary\xff");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(read_n(&mut c, 8), b"\x00binary\xff");

    let r = http::request(
        "DELETE",
        &admin,
        &format!("/v1/services/plex/downstreams/{uuid}"),
        None,
        b"",
    );
    assert_eq!(r.status, 204);
    let mut buf = [0u8; 1];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "expected EOF after the kick"
    );
    gw.wait_downstreams(0);
    // Gone now.
    let r = http::request("POST", &admin, &send, None, b"x");
    assert_eq!(r.status, 404);
    assert!(json(&r.body)["error"].as_str().unwrap().contains(&uuid));
}

#[test]
fn bad_requests_get_json_errors() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let admin = gw.admin();
    let cases: &[(&str, &str, &[u8], u16)] = &[
        ("POST", "/v1/services/plex/upstreams", b"{not json", 400),
        (
            "POST",
            "/v1/services/plex/upstreams",
            b"{\"address\":\"tcp://127.0.0.1:1\"}",
            400,
        ),
        (
            "POST",
            "/v1/services/plex/upstreams",
            b"{\"address\":\"grpc://\"}",
            400,
        ),
        (
            "POST",
            "/v1/services/plex/upstreams",
            b"{\"address\":\"grpc://a:1\",\"x\":1}",
            400,
        ),
        ("DELETE", "/v1/services/plex/upstreams/u99", b"", 404),
        ("DELETE", "/v1/services/plex/downstreams/nope", b"", 404),
        ("POST", "/v1/services/plex/broadcast?target=some", b"x", 400),
        ("GET", "/v1/services/nosuch/upstreams", b"", 404),
        ("POST", "/upstream/add", b"[]", 400),
        (
            "POST",
            "/upstream/add",
            b"{\"host\":\"h\",\"port\":70000}",
            400,
        ),
        (
            "POST",
            "/upstream/add",
            b"{\"host\":\"h\",\"port\":1,\"alive_timeout\":-1}",
            400,
        ),
    ];
    for (method, path, body, status) in cases {
        let r = http::request(method, &admin, path, None, body);
        assert_eq!(r.status, *status, "{method} {path}: {}", r.body);
        assert!(
            json(&r.body)["error"].is_string(),
            "{method} {path}: {}",
            r.body
        );
    }
}

/// A gateway node in front of an echo upstream, its admin token `t0k`: the upstream, the
/// directory and the node.
fn gateway_with_token(tag: &str) -> (common::Proc, common::TempDir, common::Proc) {
    let up = upstream(&["--mode", "echo"]);
    let toml = common::grpc::gateway_toml(&[up_url(&up)], "", "")
        .replace("[admin]\n", "[admin]\ntoken = \"t0k\"\n");
    let dir = common::TempDir::new(tag);
    let node = common::Proc::run_toml(&dir, "gw.toml", &toml);
    (up, dir, node)
}

#[test]
fn a_token_guards_the_gateway_routes_and_the_legacy_one() {
    let (_up, _dir, node) = gateway_with_token("grpc-token");
    let admin = node.addr("admin");
    for (m, p) in [
        ("GET", "/v1/services/plex/upstreams"),
        ("POST", "/upstream/add"),
    ] {
        assert_eq!(
            http::request(m, &admin, p, None, b"{}").status,
            401,
            "{m} {p}"
        );
    }
    let r = http::request(
        "GET",
        &admin,
        "/v1/services/plex/upstreams",
        Some("t0k"),
        b"",
    );
    assert_eq!(r.status, 200);
}

/// No request can make the node dial an address unless it carries the token, whatever the
/// spelling of the path: a witness listener, the address every request asks the node to add,
/// sees no connection until the token is given.
#[test]
fn no_spelling_of_an_upstream_route_makes_the_node_dial_without_the_token() {
    let (_up, _dir, node) = gateway_with_token("grpc-dial");
    let admin = node.addr("admin");
    let witness = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    witness.set_nonblocking(true).unwrap();
    let port = witness.local_addr().unwrap().port();
    let add = format!("{{\"address\":\"grpc://127.0.0.1:{port}\"}}");
    let legacy = format!("{{\"host\":\"127.0.0.1\",\"port\":{port}}}");
    for (path, body) in [
        ("//v1/services/plex/upstreams", &add),
        ("/v1//services/plex/upstreams/", &add),
        ("/./v1/services/plex/upstreams", &add),
        ("/%76%31/services/plex/upstreams", &add),
        ("/x/../v1/services/plex/upstreams", &add),
        ("//upstream/add", &legacy),
        ("/upstream/./add", &legacy),
        ("/upstream%2Fadd", &legacy),
    ] {
        let r = http::request("POST", &admin, path, None, body.as_bytes());
        assert!(
            r.status == 401 || r.status == 400,
            "POST {path}: {} {}",
            r.status,
            r.body
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(witness.accept().is_err(), "the node dialled the witness");
    // With the token the same request is obeyed, and the witness sees the dial.
    let r = http::request(
        "POST",
        &admin,
        "//v1/services/plex/upstreams",
        Some("t0k"),
        add.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(wait_for(Duration::from_secs(5), || witness
        .accept()
        .is_ok()));
}

#[test]
fn metrics_count_messages_bytes_and_readiness_per_upstream() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let mut c = connect(&gw.addr());
    c.write_all(b"12345").unwrap();
    assert_eq!(read_n(&mut c, 5), b"12345");
    let admin = gw.admin();
    let u = up_url(&up);
    let series = |name: &str, extra: &str| {
        metric(
            &admin,
            &format!("{name}{{service=\"plex\",upstream=\"{u}\"{extra}}}"),
        )
    };
    assert_eq!(series("busway_upstream_ready", ""), Some(1.0));
    assert_eq!(series("busway_upstream_downstreams", ""), Some(1.0));
    assert_eq!(
        series("busway_upstream_messages_total", ",direction=\"in\""),
        Some(1.0)
    );
    assert_eq!(
        series("busway_upstream_messages_total", ",direction=\"out\""),
        Some(1.0)
    );
    assert_eq!(
        series("busway_upstream_bytes_total", ",direction=\"in\""),
        Some(5.0)
    );
    assert_eq!(
        series("busway_upstream_bytes_total", ",direction=\"out\""),
        Some(5.0)
    );
    assert_eq!(
        metric(&admin, "busway_grpc_downstreams{service=\"plex\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &admin,
            "busway_bytes_total{service=\"plex\",direction=\"in\"}"
        ),
        Some(5.0)
    );
    // /v1/services shows the upstream as the service's target.
    let svcs = common::grpc::list(&admin, "/v1/services");
    assert_eq!(svcs[0]["targets"][0]["address"], u.as_str());
    assert_eq!(svcs[0]["targets"][0]["state"], "up");
    assert_eq!(svcs[0]["targets"][0]["sessions"], 1);
}

#[test]
fn a_client_that_does_not_read_is_closed_not_buffered_forever() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let admin = gw.admin();
    let c = connect(&gw.addr());
    let uuid = gw.wait_downstreams(1)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let send = format!("/v1/services/plex/downstreams/{uuid}/send");
    let chunk = vec![7u8; 1024 * 1024];
    let rss_before = gw.node.rss_kib();
    let mut accepted = 0;
    let refused = loop {
        let r = http::request("POST", &admin, &send, None, &chunk);
        if r.status != 204 || accepted == 64 {
            break r.status;
        }
        accepted += 1;
    };
    // Closed for not reading, and said so, once its queue (OUT_CAP, one chunk), the chunk being
    // written and the two sockets' buffers were full: the node's send buffer grows up to
    // tcp_wmem's maximum, the client's receive buffer stays at tcp_rmem's default (it never
    // reads, so the kernel has no reason to grow it).
    assert_eq!(
        refused, 409,
        "{accepted} MiB queued for a client that never reads"
    );
    let kernel = common::grpc::tcp_buffer("tcp_wmem", 2) + common::grpc::tcp_buffer("tcp_rmem", 1);
    let bound = 2 + kernel.div_ceil(1 << 20);
    assert!(accepted <= bound, "{accepted} MiB accepted, bound {bound}");
    assert!(wait_for(Duration::from_secs(3), || gw
        .downstreams()
        .is_empty()));
    assert_eq!(
        metric(&admin, "busway_grpc_overflow_total{service=\"plex\"}"),
        Some(1.0)
    );
    let grown = gw.node.rss_kib().saturating_sub(rss_before);
    // The queue, the chunk being written and the request being read: a few MiB.
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    drop(c);
}

/// SIGHUP with a changed upstream list: the new one is started, the removed one drained, and
/// the client stays connected throughout.
#[test]
fn a_reload_swaps_upstreams_without_dropping_clients() {
    let a = upstream(&["--mode", "echo", "--tag", "A:"]);
    let b = upstream(&["--mode", "echo", "--tag", "B:"]);
    let dir = common::TempDir::new("grpc-reload");
    let path = dir.write(
        "gw.toml",
        &common::grpc::gateway_toml(&[up_url(&a)], "", ""),
    );
    let node = common::Proc::start(&["run", "-c", path.to_str().unwrap()]);
    let admin = node.addr("admin");
    let ups = || common::grpc::list(&admin, "/v1/services/plex/upstreams");
    assert!(wait_for(Duration::from_secs(10), || ups()
        .iter()
        .any(|u| u["state"] == "up")));
    let mut c = connect(&node.addr("plex"));
    c.write_all(b"m").unwrap();
    assert_eq!(read_n(&mut c, 3), b"A:m");

    dir.write(
        "gw.toml",
        &common::grpc::gateway_toml(&[up_url(&b)], "", ""),
    );
    node.signal(1); // SIGHUP
    assert!(wait_for(Duration::from_secs(10), || {
        let u = ups();
        u.len() == 1 && u[0]["address"] == up_url(&b).as_str() && u[0]["state"] == "up"
    }));
    c.write_all(b"m").unwrap();
    assert_eq!(read_n(&mut c, 3), b"B:m");
    assert_eq!(
        metric(&admin, "busway_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
}
