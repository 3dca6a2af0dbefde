//! Upstream health: ready and live checks, downstreams moved without being disconnected, an
//! upstream killed and restarted on its port, a malformed upstream, and clients that wait for a
//! ready upstream or give up.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::grpc::{up_url, upstream, Gateway};
use common::{connect, http, metric, read_n, wait_for};

const SIGUSR1: i32 = 10;
/// The most the node puts in one message: one client read.
const CHUNK: usize = 16 * 1024;

/// Echo through `c` until the reply carries `tag`, within `limit`. A message can be lost with an
/// upstream that dies, so a reply that does not come within 500 ms is given up and asked again.
fn echo_until_tag(c: &mut std::net::TcpStream, tag: &[u8], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut found = false;
    while !found && Instant::now() < deadline {
        c.write_all(b"p").unwrap();
        let mut got = [0u8; 3];
        match c.read_exact(&mut got) {
            Ok(()) => found = got.starts_with(tag),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("client connection failed: {e}"),
        }
    }
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    found
}

/// Two echo upstreams tagged `A:` and `B:` behind a gateway, and one client that has been
/// answered once (so it is assigned).
struct TaggedPair {
    a: common::Proc,
    b: common::Proc,
    gw: Gateway,
    c: std::net::TcpStream,
    on_a: bool,
}

impl TaggedPair {
    fn start() -> TaggedPair {
        let a = upstream(&["--mode", "echo", "--tag", "A:"]);
        let b = upstream(&["--mode", "echo", "--tag", "B:"]);
        let gw = Gateway::start(&[up_url(&a), up_url(&b)], "", 2);
        let mut c = connect(&gw.addr());
        c.write_all(b"p").unwrap();
        let on_a = read_n(&mut c, 3).starts_with(b"A:");
        TaggedPair { a, b, gw, c, on_a }
    }

    /// The tag of the upstream the client is not on.
    fn other_tag(&self) -> &'static [u8] {
        if self.on_a {
            b"B:"
        } else {
            b"A:"
        }
    }
}

#[test]
fn an_upstream_that_stops_answering_live_loses_its_downstreams_not_their_connections() {
    let mut pair = TaggedPair::start();
    let other_tag = pair.other_tag();
    let silenced = if pair.on_a { &pair.a } else { &pair.b };
    let (gw, c) = (&pair.gw, &mut pair.c);
    let uuid = gw.wait_downstreams(1)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let before = gw.upstream_of(&uuid);

    let t0 = Instant::now();
    silenced.signal(SIGUSR1);
    // live_timeout is 500 ms: the downstream must move within live_timeout + 1 s.
    assert!(
        wait_for(Duration::from_millis(1500), || gw.upstream_of(&uuid)
            != before),
        "downstream still on {before}: {:?}",
        gw.downstreams()
    );
    let moved_after = t0.elapsed();
    assert!(moved_after < Duration::from_millis(1500), "{moved_after:?}");
    // Same connection, now answered by the other upstream.
    assert!(echo_until_tag(c, other_tag, Duration::from_secs(2)));
    let admin = gw.admin();
    // Moved once, by the failed heartbeat; not again by its next message.
    assert_eq!(
        metric(&admin, "busway_grpc_reassignments_total{service=\"plex\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &admin,
            "busway_sessions_total{service=\"plex\",outcome=\"error\"}"
        ),
        Some(0.0)
    );
    assert_eq!(gw.downstreams().len(), 1);

    // Live again: it comes back and takes new clients (least loaded goes to it).
    silenced.signal(SIGUSR1);
    gw.wait_healthy(2);
}

#[test]
fn an_upstream_killed_and_restarted_on_its_port_serves_again() {
    let mut up = upstream(&["--mode", "echo"]);
    let url = up_url(&up);
    let port = url.rsplit(':').next().unwrap().to_string();
    let gw = Gateway::start(std::slice::from_ref(&url), "", 1);
    let mut c = connect(&gw.addr());
    c.write_all(b"before").unwrap();
    assert_eq!(read_n(&mut c, 6), b"before");

    up.kill();
    gw.wait_healthy(0);
    let admin = gw.admin();
    assert_eq!(http::get(&admin, "/readyz").status, 503);
    // The client is still connected; what it writes now waits for an upstream.
    c.write_all(b"during").unwrap();

    let up2 = common::Proc::upstream_at(&format!("127.0.0.1:{port}"), &["--mode", "echo"]);
    gw.wait_healthy(1);
    assert_eq!(read_n(&mut c, 6), b"during");
    c.write_all(b"after").unwrap();
    assert_eq!(read_n(&mut c, 5), b"after");
    assert!(
        metric(
            &admin,
            &format!("busway_upstream_failures_total{{service=\"plex\",upstream=\"{url}\"}}")
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        metric(
            &admin,
            "busway_sessions_total{service=\"plex\",outcome=\"error\"}"
        ),
        Some(0.0)
    );
    drop(up2);
}

#[test]
fn a_crashed_upstream_counts_what_it_may_have_lost_and_its_clients_move() {
    let a = upstream(&["--mode", "echo", "--crash-after", "3", "--tag", "A:"]);
    let b = upstream(&["--mode", "echo", "--tag", "B:"]);
    let toml = common::grpc::gateway_toml(
        &[up_url(&a), up_url(&b)],
        "balance = \"least-sessions\"",
        "",
    );
    let gw = Gateway::start_toml(&toml, 2);
    // One after the other, so least-sessions puts exactly one on each upstream.
    let mut clients = Vec::new();
    for n in 1..=2 {
        clients.push(connect(&gw.addr()));
        gw.wait_downstreams(n);
    }
    for u in gw.upstreams() {
        assert_eq!(u["downstreams"], 1, "{u}");
    }
    // Keep writing until A has crashed; every client ends up answered by B.
    for c in clients.iter_mut() {
        assert!(echo_until_tag(c, b"B:", Duration::from_secs(5)));
    }
    let admin = gw.admin();
    let lost = |stage: &str| {
        metric(
            &admin,
            &format!(
                "busway_upstream_lost_messages_total{{service=\"plex\",upstream=\"{}\",stage=\"{stage}\"}}",
                up_url(&a)
            ),
        )
    };
    // Its one client has at most one message in flight, which A read (and crashed on): nothing
    // was left in the queue. That message, at least, was written after the last answered
    // heartbeat; at most the three A read can be unconfirmed.
    assert_eq!(lost("queued"), Some(0.0));
    let unconfirmed = lost("unconfirmed").unwrap_or(0.0);
    assert!((1.0..=3.0).contains(&unconfirmed), "{unconfirmed}");
    assert_eq!(gw.downstreams().len(), 2);
}

#[test]
fn an_oversize_reply_closes_that_upstreams_call_and_its_clients_move() {
    let mut pair = TaggedPair::start();
    let other = pair.other_tag();
    let (gw, c) = (&pair.gw, &mut pair.c);
    // Ask the upstream for a 5 MiB reply: over the 4 MiB message limit.
    c.write_all(b"@big:5242880").unwrap();
    // It goes as a message of its own, before the next writes: "p" (1 byte) came before it.
    let read = || gw.downstreams().first().map(|d| d["bytes_in"].clone()) == Some(13.into());
    assert!(
        wait_for(Duration::from_secs(5), read),
        "{:?}",
        gw.downstreams()
    );
    assert!(echo_until_tag(c, other, Duration::from_secs(3)));
    assert!(
        gw.node.wait_stderr("too large", Duration::from_secs(3)),
        "{}",
        gw.node.stderr()
    );
}

#[test]
fn a_not_ready_upstream_gets_no_clients() {
    let ready = upstream(&["--mode", "echo", "--tag", "R:"]);
    let lazy = upstream(&["--mode", "echo", "--not-ready"]);
    let gw = Gateway::start(&[up_url(&lazy), up_url(&ready)], "", 1);
    for _ in 0..4 {
        let mut c = connect(&gw.addr());
        c.write_all(b"m").unwrap();
        assert_eq!(read_n(&mut c, 3), b"R:m");
    }
    let ups = gw.upstreams();
    let l = ups.iter().find(|u| u["address"] == up_url(&lazy)).unwrap();
    assert_eq!(
        (l["ready"].as_bool(), l["state"].as_str()),
        (Some(false), Some("down"))
    );
    assert_eq!(http::get(&gw.admin(), "/readyz").status, 200);
}

#[test]
fn without_a_ready_upstream_new_clients_wait_then_are_closed() {
    let lazy = upstream(&["--mode", "echo", "--not-ready"]);
    let gw = Gateway::start(&[up_url(&lazy)], "upstream_wait = \"400ms\"", 0);
    let admin = gw.admin();
    let r = http::get(&admin, "/readyz");
    assert_eq!(r.status, 503);
    assert!(
        r.body.contains("plex") && r.body.contains("not ready"),
        "{}",
        r.body
    );
    let mut c = connect(&gw.addr());
    let t0 = Instant::now();
    let mut buf = [0u8; 1];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "expected EOF");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(
        metric(&admin, "busway_grpc_no_upstream_total{service=\"plex\"}"),
        Some(1.0)
    );

    // A client that arrives while it becomes ready is served.
    let lazy2 = upstream(&["--mode", "echo", "--not-ready"]);
    let gw2 = Gateway::start(&[up_url(&lazy2)], "upstream_wait = \"5s\"", 0);
    let mut c2 = connect(&gw2.addr());
    c2.write_all(b"w").unwrap();
    // Accepted, and waiting for an upstream: a session, not yet a downstream.
    let waiting = || {
        gw2.metric("busway_sessions_active{service=\"plex\"}") == Some(1.0)
            && gw2.downstreams().is_empty()
    };
    assert!(wait_for(Duration::from_secs(5), waiting));
    lazy2.signal(12); // SIGUSR2: ready
    assert_eq!(read_n(&mut c2, 1), b"w");
}

/// A client that floods an upstream that has stopped reading (but still answers `ready` and
/// `live`, so it stays healthy) is held back by flow control — the per-upstream queue, then the
/// call's HTTP/2 stream window, then its own socket — not buffered in memory.
#[test]
fn a_flooding_client_is_held_back_not_buffered() {
    // It reads one message, then nothing for a minute.
    let up = upstream(&["--mode", "sink", "--delay-ms", "60000"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let c = connect(&gw.addr());
    gw.wait_downstreams(1);
    let rss_before = gw.node.rss_kib();
    let mut w = c.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match w.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    // The rest of what the client wrote is in the kernel: its send buffer and the node's
    // receive buffer, each at most tcp_wmem's and tcp_rmem's maximum.
    let kernel = common::grpc::tcp_buffer("tcp_wmem", 2) + common::grpc::tcp_buffer("tcp_rmem", 2);
    // What the node took from the client and queued for the upstream: one message the upstream
    // read, its 1 MiB stream window, what tonic and h2 hold between them, and the queue.
    let taken = gw
        .metric(&format!(
            "busway_upstream_bytes_total{{service=\"plex\",upstream=\"{}\",direction=\"in\"}}",
            up_url(&up)
        ))
        .unwrap_or(f64::MAX) as usize;
    let bound = busway_grpc::QUEUE * CHUNK + (1 << 20) + 8 * CHUNK;
    assert!(
        taken <= bound,
        "{taken} bytes queued, bound {bound} ({sent} sent)"
    );
    assert!(
        sent <= taken + CHUNK + kernel,
        "{sent} bytes sent: {taken} queued, {kernel} in the kernel at most"
    );
    // Memory: the queue's worth, not what the client offered.
    let grown = gw.node.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 8 * 1024,
        "busway RSS grew by {grown} KiB holding back {sent} bytes ({taken} taken)"
    );
    // Still healthy, and nothing was dropped to make room.
    gw.wait_healthy(1);
    assert_eq!(gw.downstreams().len(), 1);
    drop(c);
}

/// A server that answers with bytes that are not HTTP/2 is never used, the reason is shown,
/// and nothing else is disturbed.
#[test]
fn a_peer_that_does_not_speak_grpc_is_never_used() {
    let garbage =
        busway_test_support::backends::banner(b"HTTP/1.0 400 nope\r\n\r\n\x00\xff\x13garbage");
    let good = upstream(&["--mode", "echo"]);
    let bad_url = garbage.url().replace("tcp://", "grpc://");
    let gw = Gateway::start(&[bad_url.clone(), up_url(&good)], "", 1);
    for _ in 0..3 {
        let mut c = connect(&gw.addr());
        c.write_all(b"ok").unwrap();
        assert_eq!(read_n(&mut c, 2), b"ok");
    }
    let ups = gw.upstreams();
    let bad = ups
        .iter()
        .find(|u| u["address"] == bad_url.as_str())
        .unwrap();
    assert_eq!(bad["state"], "down", "{bad}");
    assert_eq!(bad["downstreams"], 0, "{bad}");
    assert!(!bad["last_error"].as_str().unwrap().is_empty(), "{bad}");
}

/// With lifecycle events, the upstream that takes over a moved downstream hears CONNECTED.
#[test]
fn the_upstream_taking_over_a_downstream_hears_it_connect() {
    let a = upstream(&["--mode", "echo"]);
    let b = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&a), up_url(&b)], "lifecycle_events = true", 2);
    let _c = connect(&gw.addr());
    let uuid = gw.wait_downstreams(1)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let connected = format!("event {uuid} CONNECTED");
    let on_a = gw.upstream_of(&uuid) == gw.upstreams()[0]["id"];
    let (from, to) = if on_a { (&a, &b) } else { (&b, &a) };
    assert!(
        from.wait_stdout(|l| l == connected, Duration::from_secs(5)),
        "{:?}",
        from.stdout_lines()
    );
    assert!(!to.stdout_lines().contains(&connected));
    from.signal(SIGUSR1);
    assert!(
        to.wait_stdout(|l| l == connected, Duration::from_secs(3)),
        "{:?}",
        to.stdout_lines()
    );
}
