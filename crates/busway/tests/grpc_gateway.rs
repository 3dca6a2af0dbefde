//! The gRPC gateway against reference upstreams: one bidirectional call per upstream shared by
//! every downstream, UUIDs, exact bytes, the original server's replies, broadcast, distribution,
//! lifecycle events, and a gateway behind a bus transport.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::grpc::{calls_started, is_uuid_v4, up_url, upstream, Gateway};
use common::{connect, http, read_n, wait_for, Chain};

#[test]
fn twenty_clients_share_one_call_per_upstream() {
    let a = upstream(&["--mode", "echo", "--verbose"]);
    let b = upstream(&["--mode", "echo", "--verbose"]);
    let gw = Gateway::start(&[up_url(&a), up_url(&b)], "", 2);
    let mut clients: Vec<_> = (0..20).map(|_| connect(&gw.addr())).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let msg = format!("client {i} says hello");
        c.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(c, msg.len()), msg.as_bytes(), "client {i}");
    }
    let downs = gw.wait_downstreams(20);
    for d in &downs {
        assert!(is_uuid_v4(d["uuid"].as_str().unwrap()), "{d}");
        assert_eq!(d["bytes_in"], d["bytes_out"], "{d}");
    }
    // Round robin: 10 each.
    for u in gw.upstreams() {
        assert_eq!(u["downstreams"], 10, "{u}");
    }
    for up in [&a, &b] {
        // The upstream prints its line after it echoed, so the client can be ahead of it.
        let data_lines = || {
            up.stdout_lines()
                .iter()
                .filter(|l| l.starts_with("data "))
                .count()
        };
        wait_for(Duration::from_secs(5), || data_lines() >= 10);
        let lines = up.stdout_lines();
        assert_eq!(calls_started(up), [1], "{lines:?}");
        // The upstream saw the same uuids the admin API lists.
        let uuids: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("data "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(uuids.len(), 10, "{lines:?}");
        for u in uuids {
            assert!(downs.iter().any(|d| d["uuid"] == u), "{u} not listed");
        }
    }
}

#[test]
fn one_mib_comes_back_byte_exact_over_tcp_and_unix() {
    let up = upstream(&["--mode", "echo"]);
    let dir = common::TempDir::new("grpc-unix");
    let sock = dir.path("plex.sock");
    let toml = common::grpc::gateway_toml(&[up_url(&up)], "", "").replace(
        "listen = [\"tcp://127.0.0.1:0\"]",
        &format!(
            "listen = [\"tcp://127.0.0.1:0\", \"unix://{}\"]",
            sock.display()
        ),
    );
    let gw = Gateway::start_toml(&toml, 1);
    let data = busway_test_support::backends::pattern(1 << 20);
    let mut tcp = connect(&gw.addr());
    let mut unix = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for s in [&mut tcp as &mut dyn ReadWrite, &mut unix] {
        let mut s: &mut dyn ReadWrite = s;
        let mut w = s.clone_box();
        let sent = data.clone();
        let t = std::thread::spawn(move || w.write_all(&sent).unwrap());
        assert!(read_n(&mut s, data.len()) == data, "1 MiB differs");
        t.join().unwrap();
    }
}

/// A socket the test can clone for a writer thread.
trait ReadWrite: Read + Write {
    fn clone_box(&self) -> Box<dyn Write + Send>;
}
impl ReadWrite for std::net::TcpStream {
    fn clone_box(&self) -> Box<dyn Write + Send> {
        Box::new(self.try_clone().unwrap())
    }
}
impl ReadWrite for std::os::unix::net::UnixStream {
    fn clone_box(&self) -> Box<dyn Write + Send> {
        Box::new(self.try_clone().unwrap())
    }
}

const SALUT: &str = "Salut à toi cher downstream";

/// The original test server answers to the sender, then to everyone, alternately.
#[test]
fn salut_replies_alternate_between_sender_and_everyone() {
    let up = upstream(&[]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let mut a = connect(&gw.addr());
    let mut b = connect(&gw.addr());
    a.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut a, SALUT.len()), SALUT.as_bytes());
    b.write_all(b"y").unwrap();
    // The second reply is a broadcast: both get it.
    assert_eq!(read_n(&mut a, SALUT.len()), SALUT.as_bytes());
    assert_eq!(read_n(&mut b, SALUT.len()), SALUT.as_bytes());
    // Exactly two replies came from the upstream, and each downstream was written exactly what
    // it read: nothing else is pending for either.
    let out = format!(
        "busway_upstream_messages_total{{service=\"plex\",upstream=\"{}\",direction=\"out\"}}",
        up_url(&up)
    );
    assert_eq!(gw.metric(&out), Some(2.0));
    let n = SALUT.len() as u64;
    assert_eq!(gw.downstream_of(&a)["bytes_out"], 2 * n);
    assert_eq!(gw.downstream_of(&b)["bytes_out"], n);
}

#[test]
fn broadcasts_reach_active_or_inactive_downstreams() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "active_window = \"1500ms\"", 1);
    let mut busy = connect(&gw.addr());
    let mut quiet = connect(&gw.addr());
    quiet.write_all(b"q").unwrap();
    assert_eq!(read_n(&mut quiet, 1), b"q");
    gw.wait_downstreams(2);
    // Both go inactive once active_window has passed without a byte.
    let idle = || gw.downstreams().iter().all(|d| d["active"] == false);
    assert!(
        wait_for(Duration::from_secs(5), idle),
        "{:?}",
        gw.downstreams()
    );
    busy.write_all(b"b").unwrap();
    assert_eq!(read_n(&mut busy, 1), b"b");

    // From an upstream: `@active:` reaches only the busy one.
    busy.write_all(b"@active:to-active").unwrap();
    assert_eq!(read_n(&mut busy, 9), b"to-active");
    // From the admin API: inactive reaches only the quiet one.
    let admin = gw.admin();
    let r = http::request(
        "POST",
        &admin,
        "/v1/services/plex/broadcast?target=inactive",
        None,
        b"to-inactive",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{\"delivered\":1}"));
    assert_eq!(read_n(&mut quiet, 11), b"to-inactive");
    let r = http::request(
        "POST",
        &admin,
        "/v1/services/plex/broadcast?target=all",
        None,
        b"!",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{\"delivered\":2}"));
    assert_eq!(read_n(&mut quiet, 1), b"!");
    assert_eq!(read_n(&mut busy, 1), b"!");
    // Nothing else reached either: each was written exactly what it read.
    assert_eq!(gw.downstream_of(&busy)["bytes_out"], 1 + 9 + 1);
    assert_eq!(gw.downstream_of(&quiet)["bytes_out"], 1 + 11 + 1);
}

#[test]
fn replies_to_unknown_uuids_are_counted_and_dropped() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let mut c = connect(&gw.addr());
    c.write_all(b"@to:00000000-0000-4000-8000-000000000000:lost")
        .unwrap();
    c.write_all(b"ok").unwrap();
    // The echo of "ok" arrives (maybe in the same chunk as the first message, which echoes
    // nothing); the lost reply does not.
    let admin = gw.admin();
    assert!(wait_for(Duration::from_secs(5), || {
        common::metric(&admin, "busway_grpc_unknown_uuid_total{service=\"plex\"}") == Some(1.0)
    }));
}

#[test]
fn per_chunk_distribution_alternates_upstreams() {
    let a = upstream(&["--mode", "echo", "--tag", "A:"]);
    let b = upstream(&["--mode", "echo", "--tag", "B:"]);
    let gw = Gateway::start(&[up_url(&a), up_url(&b)], "distribute = \"per-chunk\"", 2);
    let mut c = connect(&gw.addr());
    let mut tags = Vec::new();
    for _ in 0..6 {
        c.write_all(b"m").unwrap();
        tags.push(read_n(&mut c, 3));
    }
    let a_count = tags.iter().filter(|t| t.as_slice() == b"A:m").count();
    let b_count = tags.iter().filter(|t| t.as_slice() == b"B:m").count();
    assert_eq!((a_count, b_count), (3, 3), "{tags:?}");
    assert!(
        tags.windows(2).all(|w| w[0] != w[1]),
        "not alternating: {tags:?}"
    );
}

#[test]
fn per_client_distribution_sticks() {
    let a = upstream(&["--mode", "echo", "--tag", "A:"]);
    let b = upstream(&["--mode", "echo", "--tag", "B:"]);
    let gw = Gateway::start(&[up_url(&a), up_url(&b)], "", 2);
    let mut c = connect(&gw.addr());
    c.write_all(b"m").unwrap();
    let first = read_n(&mut c, 3);
    for _ in 0..5 {
        c.write_all(b"m").unwrap();
        assert_eq!(read_n(&mut c, 3), first);
    }
}

#[test]
fn lifecycle_events_announce_arrivals_and_departures() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "lifecycle_events = true", 1);
    let c = connect(&gw.addr());
    let uuid = gw.wait_downstreams(1)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let connected = format!("event {uuid} CONNECTED");
    assert!(
        up.wait_stdout(|l| l == connected, Duration::from_secs(5)),
        "{:?}",
        up.stdout_lines()
    );
    drop(c);
    let gone = format!("event {uuid} DISCONNECTED");
    assert!(
        up.wait_stdout(|l| l == gone, Duration::from_secs(5)),
        "{:?}",
        up.stdout_lines()
    );
    // Without the option the upstream hears no events (old upstreams would see empty payloads).
    let quiet = upstream(&["--mode", "echo", "--verbose"]);
    let gw2 = Gateway::start(&[up_url(&quiet)], "", 1);
    let mut c2 = connect(&gw2.addr());
    c2.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c2, 1), b"x");
    drop(c2);
    gw2.wait_downstreams(0);
    // Everything goes over one call in order: once a later client's data has arrived, any
    // event for the first one's departure (or this one's arrival) would have too.
    let mut c3 = connect(&gw2.addr());
    c3.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut c3, 1), b"y");
    let uuid3 = gw2.wait_downstreams(1)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let data3 = format!("data {uuid3} 1");
    assert!(quiet.wait_stdout(|l| l == data3, Duration::from_secs(5)));
    let lines = quiet.stdout_lines();
    assert!(!lines.iter().any(|l| l.starts_with("event")), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("data ")).count(),
        2,
        "{lines:?}"
    );
}

/// A client of an ingress reaches gRPC upstreams behind an egress node.
#[test]
fn a_gateway_behind_a_bus_transport() {
    let up = upstream(&["--mode", "echo"]);
    let egress = format!(
        r#"
[node]
name = "egress"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
listen = ["tcp://127.0.0.1:0"]
secret = "{s}"
[[service]]
name = "chat"
backends = ["{u}"]
[service.grpc]
ready_interval = "100ms"
"#,
        s = common::SECRET,
        u = up_url(&up)
    );
    let chain = Chain::with(&egress, |bus| common::ingress_toml(bus, ""));
    let egress_admin = chain.egress.addr("admin");
    assert!(wait_for(Duration::from_secs(10), || http::get(
        &egress_admin,
        "/readyz"
    )
    .status
        == 200));
    let mut c = chain.client();
    let data = busway_test_support::backends::pattern(256 * 1024);
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || w.write_all(&sent).unwrap());
    assert!(read_n(&mut c, data.len()) == data);
    t.join().unwrap();
    let downs = common::grpc::list(&egress_admin, "/v1/services/chat/downstreams");
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert!(
        downs[0]["client"].as_str().unwrap().contains("via ingress"),
        "{downs:?}"
    );
}

/// `grpcs://`: the upstream's certificate is checked against the roots busway is given.
#[test]
fn a_tls_upstream_is_reached_with_grpcs() {
    let dir = common::TempDir::new("grpc-tls");
    let p = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("up.key"),
        "-out",
        &p("up.csr"),
    ]);
    dir.write(
        "ext.cnf",
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("up.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("up.pem"),
    ]);
    let up = common::Proc::upstream(&[
        "--mode",
        "echo",
        "--tls-cert",
        &p("up.pem"),
        "--tls-key",
        &p("up.key"),
    ]);
    let port = up_url(&up).rsplit(':').next().unwrap().to_string();
    let toml = common::grpc::gateway_toml(&[format!("grpcs://localhost:{port}")], "", "");
    let cfg = dir.write("gw.toml", &toml);
    let node = common::Proc::start_env(
        &["run", "-c", cfg.to_str().unwrap()],
        &[("SSL_CERT_FILE", &p("ca.pem"))],
    );
    let admin = node.addr("admin");
    assert!(
        wait_for(Duration::from_secs(10), || http::get(&admin, "/readyz")
            .status
            == 200),
        "{}",
        http::get(&admin, "/readyz").body
    );
    let mut c = connect(&node.addr("plex"));
    c.write_all(b"over tls").unwrap();
    assert_eq!(read_n(&mut c, 8), b"over tls");

    // Without the CA the certificate is refused, and readyz says why.
    let strict = common::Proc::start_env(
        &["run", "-c", cfg.to_str().unwrap()],
        &[
            ("SSL_CERT_FILE", "/nonexistent"),
            ("SSL_CERT_DIR", "/nonexistent"),
        ],
    );
    let admin2 = strict.addr("admin");
    // No roots to check the certificate against: readyz names that as the reason.
    let refused = || {
        http::get(&admin2, "/readyz")
            .body
            .contains("no native certs found")
    };
    assert!(
        wait_for(Duration::from_secs(10), refused),
        "{}",
        http::get(&admin2, "/readyz").body
    );
    let r = http::get(&admin2, "/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
}

/// A reply being written when the client half-closes is written to its end, and what was
/// queued behind it follows without a gap (issue 10, item 6): the client's EOF never cuts a
/// write in progress. The operator sends the client numbered 256 KiB messages while it reads
/// nothing, until one stays stuck in the write (the queue behind it stops draining); then the
/// client half-closes and reads everything.
#[test]
fn a_reply_in_progress_is_written_whole_after_the_client_half_closes() {
    let up = upstream(&["--mode", "echo"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let mut c = connect(&gw.addr());
    c.write_all(b"hi").unwrap();
    assert_eq!(read_n(&mut c, 2), b"hi");
    let uuid = gw.wait_downstreams(1)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let send = format!("/v1/services/plex/downstreams/{uuid}/send");
    let bytes_out = || gw.downstreams()[0]["bytes_out"].as_u64().unwrap() - 2;
    const PART: usize = 256 * 1024;
    let mut sent = Vec::new();
    for k in 0u8..200 {
        if sent.len() - bytes_out() as usize >= 3 * PART {
            // Three parts wait behind the one being written: has the writer stopped?
            let before = bytes_out();
            std::thread::sleep(Duration::from_millis(300));
            if bytes_out() == before {
                break;
            }
            continue;
        }
        let part = vec![k; PART];
        let r = http::request("POST", &gw.admin(), &send, None, &part);
        assert_eq!(r.status, 204, "{}", r.body);
        sent.extend_from_slice(&part);
    }
    assert!(
        sent.len() - (bytes_out() as usize) >= 3 * PART,
        "the writer never got stuck"
    );
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), sent.len(), "bytes lost at the client's EOF");
    assert!(got == sent, "a gap in what the client got");
}
