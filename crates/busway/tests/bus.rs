//! CONTRACT section 9 through a real ingress -> egress chain: bytes, order, half-close, first
//! speaker, refusals, dead peers, many sessions on one transport, flow control.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn bytes_arrive_exactly_both_ways_for_large_transfers() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let mut c = chain.client();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
    let mut writer = c.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || {
        for chunk in sent.chunks(10_007) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_all(&mut c);
    t.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
}

#[test]
fn server_that_speaks_first_reaches_the_client_before_it_sends() {
    let backend = backends::banner(b"220 hello\r\n");
    let chain = Chain::new(&backend.url());
    let mut c = chain.client();
    assert_eq!(read_n(&mut c, 11), b"220 hello\r\n");
    roundtrip(&mut c, b"after banner");
}

#[test]
fn half_close_passes_through_and_the_reply_still_arrives() {
    let backend = backends::count_then_reply();
    let chain = Chain::new(&backend.url());
    let mut c = chain.client();
    c.write_all(&vec![b'x'; 300_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c), b"got 300000 bytes");
}

#[test]
fn backend_half_close_reaches_the_client_while_it_keeps_sending() {
    let (backend, after) = busway_test_support::witness::source_then_listen(1_000_000);
    let chain = Chain::new(&backend.url());
    let mut c = chain.client();
    let got = read_all(&mut c);
    assert!(got == backends::pattern(1_000_000), "{} bytes", got.len());
    // Our side is still open after the backend's EOF: what we send now reaches it.
    c.write_all(b"still here").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || after.lock().unwrap().as_slice()
            == b"still here"),
        "the backend got {:?} after its EOF",
        String::from_utf8_lossy(&after.lock().unwrap())
    );
}

#[test]
fn refused_backend_closes_the_client_within_connect_timeout_plus_one_second() {
    let dead = backends::refusing_addr();
    let chain = Chain::new(&format!("tcp://{dead}"));
    let start = Instant::now();
    let mut c = chain.client();
    let mut buf = [0u8; 16];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected EOF");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let admin = chain.ingress.addr("admin");
    assert!(
        wait_for(Duration::from_secs(3), || metric(
            &admin,
            "busway_sessions_total{service=\"chat\",outcome=\"refused\"}"
        ) == Some(1.0)),
        "{}",
        http::get(&admin, "/metrics").body
    );
}

#[test]
fn many_sessions_share_one_transport_without_cross_talk() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let addr = chain.ingress.addr("chat");
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = connect(&addr);
                for round in 0..20 {
                    let msg = format!("client {i} round {round} {}", "y".repeat(i * 13));
                    roundtrip(&mut c, msg.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Every session went over the one transport the ingress keeps to the egress.
    let peers = http::get(&chain.ingress.addr("admin"), "/v1/peers").body;
    assert_eq!(peers.matches("\"state\":\"up\"").count(), 1, "{peers}");
}

/// CONTRACT 9.5 with absolute bounds: a client that never reads a 64 MiB download makes
/// neither node hold more than a few stream windows (256 KiB each) — the egress stops reading
/// the backend, the ingress holds one window for the client — while another session on the same
/// transport runs normally, and the stalled session still gets every byte once it reads.
#[test]
fn a_client_that_stops_reading_slows_only_its_own_session() {
    let backend = backends::source(64 * 1024 * 1024);
    let echo = backends::echo();
    let dir = TempDir::new("slow");
    let egress_cfg = egress_toml(&backend.url(), "")
        + &format!(
            "[[service]]\nname = \"echo\"\nbackends = [\"{}\"]\n",
            echo.url()
        );
    let egress = Proc::run_toml(&dir, "e.toml", &egress_cfg);
    let ingress_cfg = ingress_toml(&egress.url("bus"), "")
        + &format!(
            "[[service]]\nname = \"echo\"\nlisten = [\"tcp://127.0.0.1:0\"]\npeers = [\"{}\"]\n",
            egress.url("bus")
        );
    let ingress = Proc::run_toml(&dir, "i.toml", &ingress_cfg);
    wait_peer_up(&ingress.addr("admin"));
    let mut other = connect(ingress.listening["echo"][0].trim_start_matches("tcp://"));
    for i in 0..20 {
        roundtrip(&mut other, format!("warm {i}").as_bytes());
    }
    let (base_e, base_i) = (egress.rss_kib(), ingress.rss_kib());
    // This client never reads: the 64 MiB source must be held back by flow control.
    let mut stalled = connect(&ingress.addr("chat"));
    std::thread::sleep(Duration::from_millis(1500));
    // Meanwhile another session on the same transport works normally.
    for i in 0..50 {
        roundtrip(&mut other, format!("ping {i}").as_bytes());
    }
    let (grown_e, grown_i) = (
        egress.rss_kib().saturating_sub(base_e),
        ingress.rss_kib().saturating_sub(base_i),
    );
    eprintln!("with a stalled 64 MiB session: egress +{grown_e} KiB, ingress +{grown_i} KiB");
    for (node, grown) in [("egress", grown_e), ("ingress", grown_i)] {
        assert!(grown < 2 * 1024, "{node} grew by {grown} KiB");
    }
    // What the transports hold, exactly: the ingress at most one window for the stalled
    // client; the egress nothing it could not send.
    let held_in = metric(
        &ingress.addr("admin"),
        "busway_peer_buffered_bytes{peer=\"egress\",direction=\"in\"}",
    );
    assert!(
        held_in.is_some_and(|b| b > 0.0 && b <= f64::from(busway_proto::DEFAULT_STREAM_WINDOW)),
        "ingress holds {held_in:?}"
    );
    let held_out = metric(
        &egress.addr("admin"),
        "busway_peer_buffered_bytes{peer=\"ingress\",direction=\"out\"}",
    );
    assert!(
        held_out.is_some_and(|b| b <= f64::from(busway_proto::DEFAULT_STREAM_WINDOW)),
        "egress holds {held_out:?}"
    );
    // And the stalled session still gets every byte, in order, once it reads.
    let got = read_n(&mut stalled, 4 * 1024 * 1024);
    assert!(got == backends::pattern(4 * 1024 * 1024));
}

#[test]
fn a_dead_peer_closes_its_sessions_and_is_redialled_when_back() {
    let backend = backends::echo();
    let dir = TempDir::new("dead");
    let egress_path = dir.write("e.toml", &egress_toml(&backend.url(), ""));
    let mut egress = Proc::start(&["run", "-c", egress_path.to_str().unwrap()]);
    let bus = egress.url("bus");
    let ingress = Proc::run_toml(&dir, "i.toml", &ingress_toml(&bus, ""));
    let admin = ingress.addr("admin");
    wait_peer_up(&admin);
    let mut c = connect(&ingress.addr("chat"));
    roundtrip(&mut c, b"before");
    egress.kill();
    let start = Instant::now();
    let mut buf = [0u8; 8];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Bring the egress back on the same port: the ingress redials and carries sessions again.
    let port_cfg = egress_toml(&backend.url(), "").replace(
        "listen = [\"tcp://127.0.0.1:0\"]\nsecret",
        &format!("listen = [\"{bus}\"]\nsecret"),
    );
    let _egress2 = Proc::run_toml(&dir, "e2.toml", &port_cfg);
    wait_peer_up(&admin);
    let mut c = connect(&ingress.addr("chat"));
    roundtrip(&mut c, b"after");
}

#[test]
fn unix_sockets_work_for_clients_bus_and_backends() {
    let dir = TempDir::new("unix");
    let backend = backends::echo();
    // A direct L4 service exposes the TCP echo backend on a Unix socket, to be the egress backend.
    let be_sock = dir.path("backend.sock");
    let bus_sock = dir.path("bus.sock");
    let client_sock = dir.path("client.sock");
    let egress_cfg = format!(
        r#"
[node]
name = "egress"
[bus]
listen = ["unix://{bus}"]
secret = "{SECRET}"
[[service]]
name = "chat"
backends = ["unix://{be}"]
[[service]]
name = "shim"
listen = ["unix://{be}"]
backends = ["{echo}"]
"#,
        bus = bus_sock.display(),
        be = be_sock.display(),
        echo = backend.url()
    );
    let egress = Proc::run_toml(&dir, "e.toml", &egress_cfg);
    assert_eq!(egress.url("bus"), format!("unix://{}", bus_sock.display()));
    let ingress_cfg = format!(
        r#"
[node]
name = "ingress"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
secret = "{SECRET}"
[[service]]
name = "chat"
listen = ["unix://{client}"]
peers = ["unix://{bus}"]
"#,
        client = client_sock.display(),
        bus = bus_sock.display()
    );
    let mut ingress = Proc::run_toml(&dir, "i.toml", &ingress_cfg);
    wait_peer_up(&ingress.addr("admin"));
    let mut c = std::os::unix::net::UnixStream::connect(&client_sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let data: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    t.join().unwrap();
    assert!(got == data, "got {} bytes", got.len());
    // A clean stop removes the socket files the node created.
    ingress.signal(15);
    assert!(ingress
        .wait_exit(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
    assert!(!client_sock.exists());
}

#[test]
fn a_thousand_concurrent_sessions_ride_one_transport_and_all_work() {
    // 1,000 clients and the backend's 1,000 connections live in this process: more descriptors
    // than the common soft limit of 1,024.
    rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let addr = chain.ingress.addr("chat");
    let mut clients: Vec<_> = (0..1000).map(|_| connect(&addr)).collect();
    let admin = chain.ingress.addr("admin");
    assert!(
        wait_for(Duration::from_secs(10), || metric(
            &admin,
            "busway_sessions_active{service=\"chat\"}"
        ) == Some(1000.0)),
        "{}\n{}",
        http::get(&admin, "/metrics").body,
        chain.ingress.stderr()
    );
    for (i, c) in clients.iter_mut().enumerate() {
        roundtrip(c, format!("session {i}").as_bytes());
    }
    let peers = http::get(&admin, "/v1/peers").body;
    assert_eq!(peers.matches("\"state\":\"up\"").count(), 1, "{peers}");
    assert!(peers.contains("\"sessions\":1000"), "{peers}");
    drop(clients);
    assert!(wait_for(Duration::from_secs(10), || metric(
        &admin,
        "busway_sessions_active{service=\"chat\"}"
    ) == Some(0.0)));
}

#[test]
fn several_transports_per_peer_share_the_sessions() {
    let backend = backends::echo();
    let dir = TempDir::new("cpp");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_toml(&backend.url(), ""));
    let cfg = ingress_toml(&egress.url("bus"), "")
        .replace("[bus]\n", "[bus]\nconnections_per_peer = 3\n");
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    let admin = ingress.addr("admin");
    wait_peers_up(&admin, 3);
    let mut clients: Vec<_> = (0..30).map(|_| connect(&ingress.addr("chat"))).collect();
    for c in clients.iter_mut() {
        roundtrip(c, b"spread");
    }
    // Sessions go to the least-loaded transport, so the 30 spread over all three (exactly 10
    // each unless two sessions raced for the same transport).
    let peers = http::get(&admin, "/v1/peers").body;
    let counts: Vec<u64> = peers
        .split("\"sessions\":")
        .skip(1)
        .filter_map(|s| s.split(',').next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 3, "{peers}");
    assert_eq!(counts.iter().sum::<u64>(), 30, "{peers}");
    assert!(counts.iter().all(|&n| (7..=13).contains(&n)), "{peers}");
}

#[test]
fn a_dns_name_reaches_a_record_that_answers_and_ejects_one_that_refuses() {
    let backend = backends::echo();
    let port = backend.addr.rsplit(':').next().unwrap().to_string();
    // `localhost` has an IPv4 and an IPv6 record in /etc/hosts; the backend listens on IPv4
    // only, so the IPv6 endpoint refuses and must be ejected without failing any session.
    let chain = Chain::new(&format!("tcp://localhost:{port}"));
    for i in 0..10 {
        let mut c = chain.client();
        roundtrip(&mut c, format!("via a name {i}").as_bytes());
    }
    let services = http::get(&chain.egress.addr("admin"), "/v1/services").body;
    assert!(services.contains("tcp://127.0.0.1:"), "{services}");
}

#[test]
fn an_idle_session_is_closed_after_idle_timeout() {
    let backend = backends::echo();
    let dir = TempDir::new("idle");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_toml(&backend.url(), ""));
    let cfg = ingress_toml(&egress.url("bus"), "idle_timeout = \"300ms\"");
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    wait_peer_up(&ingress.addr("admin"));
    let mut c = connect(&ingress.addr("chat"));
    roundtrip(&mut c, b"active");
    let start = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_secs(2),
        "{idle:?}"
    );
}

#[test]
fn when_one_of_two_peers_dies_new_sessions_go_to_the_other() {
    let backend = backends::echo();
    let dir = TempDir::new("twopeers");
    let mut e1 = Proc::run_toml(&dir, "e1.toml", &egress_toml(&backend.url(), ""));
    let e2 = Proc::run_toml(&dir, "e2.toml", &egress_toml(&backend.url(), ""));
    let peers = Chain::toml_list(&[e1.url("bus"), e2.url("bus")]);
    let cfg = ingress_toml(&e1.url("bus"), "mode = \"one-to-one\"\n").replace(
        &format!("peers = [\"{}\"]", e1.url("bus")),
        &format!("peers = {peers}"),
    );
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    let admin = ingress.addr("admin");
    wait_peers_up(&admin, 2);
    e1.kill();
    wait_peers_up(&admin, 1);
    for i in 0..10 {
        let mut c = connect(&ingress.addr("chat"));
        roundtrip(&mut c, format!("after the loss {i}").as_bytes());
    }
    let services = http::get(&admin, "/v1/services").body;
    assert!(services.contains("\"state\":\"down\""), "{services}");
    drop(e2);
}
