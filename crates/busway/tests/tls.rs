//! TLS 1.3 under the bus protocol, HTTPS for the admin API, and the two limits that guard a bus
//! listener (CONTRACT section 10): real `busway` processes on loopback, with certificates made
//! by the `openssl` command at test time (common::pki).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use busway_test_support::proc::run_to_end;
use common::pki::Pki;
use common::{backends, connect, metric, roundtrip, wait_for, wait_peer_up, Proc, TempDir, SECRET};

const TLS_FAILURES: &str = "busway_handshake_failures_total{reason=\"tls\"}";
const TIMEOUTS: &str = "busway_handshake_failures_total{reason=\"timeout\"}";
const MAX_TRANSPORTS: &str = "busway_limit_rejections_total{limit=\"max_transports\"}";

/// A node's TOML: `[bus]` lines (`bus`), then `[bus.tls]` with `tls` when given, then one
/// `chat` service (`service`: its target lines).
fn node_toml(name: &str, bus: &str, tls: Option<&str>, service: &str) -> String {
    let tls = tls.map(|t| format!("[bus.tls]\n{t}")).unwrap_or_default();
    format!(
        r#"
[node]
name = "{name}"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
secret = "{SECRET}"
{bus}
{tls}
[[service]]
name = "chat"
connect_timeout = "1s"
{service}
"#
    )
}

/// An egress listening on `listen` (TOML array items) in front of `backend`.
fn egress(dir: &TempDir, listen: &str, bus: &str, tls: Option<&str>, backend: &str) -> Proc {
    let toml = node_toml(
        "egress",
        &format!("listen = [{listen}]\n{bus}"),
        tls,
        &format!("backends = [\"{backend}\"]"),
    );
    Proc::run_toml(dir, "egress.toml", &toml)
}

/// An ingress whose `chat` service goes to `peer`.
fn ingress(dir: &TempDir, file: &str, peer: &str, tls: Option<&str>) -> Proc {
    let toml = node_toml(
        "ingress",
        "",
        tls,
        &format!("listen = [\"tcp://127.0.0.1:0\"]\npeers = [\"{peer}\"]"),
    );
    Proc::run_toml(dir, file, &toml)
}

fn count(p: &Proc, series: &str) -> f64 {
    metric(&p.addr("admin"), series).unwrap_or(0.0)
}

/// Waits up to 10 s until `series` at `p` reaches `n`.
fn wait_count(p: &Proc, series: &str, n: f64) -> bool {
    wait_for(Duration::from_secs(10), || count(p, series) >= n)
}

/// Waits up to 5 s until `p` has logged `needle`: its stderr is read by a thread of its own, a
/// little after the counters that the tests wait for have moved.
fn logged(p: &Proc, needle: &str) -> bool {
    wait_for(Duration::from_secs(5), || p.stderr().contains(needle))
}

/// True when `c` is closed by the other end within `limit` without sending a byte.
fn closed_silently(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// A session through `ingress` that gets nothing through: the client is closed without an
/// answer to what it sent.
fn session_fails(ingress: &Proc) {
    let mut c = connect(&ingress.addr("chat"));
    let _ = c.write_all(b"hello?\n");
    let mut buf = [0u8; 16];
    let got = c.read(&mut buf);
    assert!(
        matches!(got, Ok(0) | Err(_)),
        "a session got through: {got:?}"
    );
}

#[test]
fn a_session_runs_over_tls_on_tcp_and_unix_bus_listeners() {
    let dir = TempDir::new("tls-session");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let sock = dir.path("bus.sock");
    let e = egress(
        &dir,
        &format!(
            "\"tcp://127.0.0.1:0\", \"unix://{}\"",
            sock.to_str().unwrap()
        ),
        "",
        Some(&pki.section("node", "ca", "")),
        &backend.url(),
    );
    let urls = e.listening.get("bus").cloned().unwrap_or_default();
    assert_eq!(urls.len(), 2, "{urls:?}");
    // A TCP peer is checked against the host of its URL (the certificate's IP address 127.0.0.1);
    // a Unix one against localhost.
    for (i, peer) in urls.iter().enumerate() {
        let i = ingress(
            &dir,
            &format!("ingress-{i}.toml"),
            peer,
            Some(&pki.section("node", "ca", "")),
        );
        wait_peer_up(&i.addr("admin"));
        let mut c = connect(&i.addr("chat"));
        roundtrip(&mut c, format!("over {peer}\n").as_bytes());
        assert_eq!(count(&i, TLS_FAILURES), 0.0, "{}", i.stderr());
    }
    assert_eq!(count(&e, TLS_FAILURES), 0.0, "{}", e.stderr());
    // The listener really speaks TLS, on both addresses, with the configured certificate.
    let tcp = busway_test_support::hostport(&urls[0]);
    for target in [
        vec!["-connect", tcp.as_str()],
        vec!["-unix", sock.to_str().unwrap()],
    ] {
        let served = pki.served_cert(&target).expect("a TLS handshake");
        assert!(served.contains("serial=1001"), "{served}");
    }
}

#[test]
fn bytes_arrive_exactly_both_ways_over_tls_with_sessions_in_parallel() {
    // Records of 16 KiB, a read-ahead buffer under rustls, envelopes cut anywhere across
    // records: what goes in comes out, byte for byte, on each of several sessions at once.
    let dir = TempDir::new("tls-bytes");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let section = pki.section("node", "ca", "");
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "",
        Some(&section),
        &backend.url(),
    );
    let i = ingress(&dir, "ingress.toml", &e.url("bus"), Some(&section));
    wait_peer_up(&i.addr("admin"));
    let chat = i.addr("chat");
    let runs: Vec<_> = (0..4u32)
        .map(|k| {
            let chat = chat.clone();
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..3_000_000u32)
                    .map(|n| (n.wrapping_mul(7 + k) + n / 3) as u8)
                    .collect();
                let mut c = connect(&chat);
                let got = common::send_all_and_read(&mut c, &data);
                assert_eq!(got.len(), data.len(), "session {k}");
                assert!(got == data, "session {k}: bytes differ");
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
    assert_eq!(count(&i, TLS_FAILURES) + count(&e, TLS_FAILURES), 0.0);
}

#[test]
fn a_dialer_refuses_an_unknown_ca_and_a_name_mismatch_and_counts_them() {
    let dir = TempDir::new("tls-dialer");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "",
        Some(&pki.section("node", "ca", "client_auth = \"none\"")),
        &backend.url(),
    );
    let bus = e.url("bus");
    // The dialer trusts another CA only.
    let wrong_ca = ingress(
        &dir,
        "wrong-ca.toml",
        &bus,
        Some(&pki.section("node", "other-ca", "")),
    );
    assert!(
        wait_count(&wrong_ca, TLS_FAILURES, 1.0),
        "{}",
        wrong_ca.stderr()
    );
    session_fails(&wrong_ca);
    assert!(logged(&wrong_ca, "unknown CA"), "{}", wrong_ca.stderr());
    // The right CA, but a name the certificate does not carry.
    let wrong_name = ingress(
        &dir,
        "wrong-name.toml",
        &bus,
        Some(&pki.section("node", "ca", "server_name = \"bus.elsewhere.example\"")),
    );
    assert!(
        wait_count(&wrong_name, TLS_FAILURES, 1.0),
        "{}",
        wrong_name.stderr()
    );
    session_fails(&wrong_name);
    assert!(
        logged(&wrong_name, "name mismatch"),
        "{}",
        wrong_name.stderr()
    );
    assert_eq!(backend.accepted(), 0, "no session reached the backend");
    // The listener detected nothing: the dialers refused it, and they counted it.
    assert_eq!(count(&e, TLS_FAILURES), 0.0, "{}", e.stderr());
    assert_eq!(count(&e, "busway_handshakes_total{kind=\"full\"}"), 0.0);
}

#[test]
fn a_listener_requiring_client_certificates_refuses_a_dialer_without_one() {
    let dir = TempDir::new("tls-client-auth");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let ca_only = format!("ca = \"{}\"\n", pki.ca("ca").to_str().unwrap());
    // client_auth defaults to required where `ca` is set.
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "",
        Some(&pki.section("node", "ca", "")),
        &backend.url(),
    );
    let i = ingress(&dir, "no-cert.toml", &e.url("bus"), Some(&ca_only));
    assert!(wait_count(&e, TLS_FAILURES, 1.0), "{}", e.stderr());
    session_fails(&i);
    assert!(logged(&e, "missing client certificate"), "{}", e.stderr());
    assert_eq!(count(&i, TLS_FAILURES), 0.0, "counted by the listener only");
    assert_eq!(backend.accepted(), 0);

    // With client_auth = "optional" the same dialer gets through.
    let dir2 = TempDir::new("tls-client-auth-optional");
    let e2 = egress(
        &dir2,
        "\"tcp://127.0.0.1:0\"",
        "",
        Some(&pki.section("node", "ca", "client_auth = \"optional\"")),
        &backend.url(),
    );
    let i2 = ingress(&dir2, "no-cert.toml", &e2.url("bus"), Some(&ca_only));
    wait_peer_up(&i2.addr("admin"));
    roundtrip(&mut connect(&i2.addr("chat")), b"optional\n");
    assert_eq!(count(&e2, TLS_FAILURES), 0.0, "{}", e2.stderr());
}

#[test]
fn a_plaintext_peer_and_a_tls12_peer_are_refused_by_the_listener() {
    let dir = TempDir::new("tls-plaintext-peer");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "",
        Some(&pki.section("node", "ca", "client_auth = \"none\"")),
        &backend.url(),
    );
    let i = ingress(&dir, "plain.toml", &e.url("bus"), None);
    assert!(wait_count(&e, TLS_FAILURES, 1.0), "{}", e.stderr());
    assert!(logged(&e, "not TLS"), "{}", e.stderr());
    session_fails(&i);
    assert_eq!(backend.accepted(), 0);

    let before = count(&e, TLS_FAILURES);
    let bus = e.addr("bus");
    assert!(
        !pki.tls12_handshake(&["-connect", &bus]),
        "TLS 1.2 was accepted"
    );
    assert!(wait_count(&e, TLS_FAILURES, before + 1.0), "{}", e.stderr());
    assert!(logged(&e, "does not offer TLS 1.3"), "{}", e.stderr());
}

#[test]
fn a_tls_dialer_refuses_a_plaintext_listener() {
    let dir = TempDir::new("tls-plaintext-listener");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let e = egress(&dir, "\"tcp://127.0.0.1:0\"", "", None, &backend.url());
    let i = ingress(
        &dir,
        "tls.toml",
        &e.url("bus"),
        Some(&pki.section("node", "ca", "")),
    );
    // The listener reads a ClientHello where a bus envelope should be (an unknown envelope
    // version, 22: busway_frames_rejected_total{reason="version"}); the dialer reads the
    // listener's plaintext GoAway where a TLS record should be (`tls`).
    assert!(wait_count(&i, TLS_FAILURES, 1.0), "{}", i.stderr());
    assert!(logged(&i, "not TLS"), "{}", i.stderr());
    assert!(
        wait_count(&e, "busway_frames_rejected_total{reason=\"version\"}", 1.0),
        "{}",
        e.stderr()
    );
    session_fails(&i);
    assert_eq!(backend.accepted(), 0);
    assert_eq!(count(&e, TLS_FAILURES), 0.0);
}

/// Forwards connections on a fresh loopback port to `target`, keeping every byte that passes
/// in either direction.
fn recording_relay(target: &str) -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (target, record) = (target.to_string(), seen.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let Ok(t) = TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [(c.try_clone().unwrap(), t.try_clone().unwrap()), (t, c)] {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (url, seen)
}

/// Forwards connections on a fresh loopback port to `target`, holding every chunk for `delay`
/// in each direction (in order), as a path with that one-way delay would. Returns its URL and
/// when it accepted each connection.
fn delaying_relay(target: &str, delay: Duration) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let (target, record) = (target.to_string(), accepted.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            record.lock().unwrap().push(Instant::now());
            let Ok(t) = TcpStream::connect(&target) else {
                continue;
            };
            let _ = (c.set_nodelay(true), t.set_nodelay(true));
            for (mut from, mut to) in [(c.try_clone().unwrap(), t.try_clone().unwrap()), (t, c)] {
                let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0
                            || tx
                                .send((Instant::now() + delay, buf[..n].to_vec()))
                                .is_err()
                        {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    for (due, bytes) in rx {
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        if to.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (url, accepted)
}

#[test]
fn tls_adds_no_round_trip_of_its_own_to_the_bus_handshake() {
    // With a one-way delay D, a plaintext handshake is up at the dialer 4 D after the TCP
    // connect (Hello, Challenge, Auth, Accept). Under TLS the exporter binds the bus handshake
    // to the TLS session, so the dialer sends Hello and Auth with its TLS Finished: TLS's round
    // trip replaces the Challenge and it is up after 4 D too. Without the binding it would be
    // 6 D. The plaintext run is the control of the method.
    const D: Duration = Duration::from_millis(150);
    let pki_dir = TempDir::new("tls-rtt-pki");
    let pki = Pki::new(&pki_dir);
    let section = pki.section("node", "ca", "");
    for tls in [false, true] {
        let dir = TempDir::new("tls-rtt");
        let backend = backends::echo();
        let t = tls.then_some(section.as_str());
        let e = egress(&dir, "\"tcp://127.0.0.1:0\"", "", t, &backend.url());
        let (relay, accepted) = delaying_relay(&e.addr("bus"), D);
        let i = ingress(&dir, "ingress.toml", &relay, t);
        let admin = i.addr("admin");
        let up = wait_for(Duration::from_secs(10), || {
            busway_test_support::http::get(&admin, "/v1/peers")
                .body
                .contains("\"state\":\"up\"")
        });
        let seen = Instant::now();
        assert!(up, "tls {tls}: {}", i.stderr());
        let first = *accepted
            .lock()
            .unwrap()
            .first()
            .expect("the relay saw the dial");
        let took = seen - first;
        assert!(
            took >= 4 * D && took < 5 * D,
            "tls {tls}: up {took:?} after the TCP connect, D = {D:?}"
        );
        roundtrip(&mut connect(&i.addr("chat")), b"over the slow path\n");
    }
}

#[test]
fn a_marker_sent_by_a_client_never_crosses_the_bus_in_clear() {
    const MARKER: &[u8] = b"MARKER-7f3a9c-never-in-clear";
    let pki_dir = TempDir::new("tls-marker-pki");
    let pki = Pki::new(&pki_dir);
    // The same chain with and without [bus.tls]: the relay must see the marker in the first
    // (or it proves nothing) and not in the second.
    for tls in [false, true] {
        let dir = TempDir::new("tls-marker");
        let backend = backends::echo();
        let section = pki.section("node", "ca", "");
        let t = tls.then_some(section.as_str());
        let e = egress(&dir, "\"tcp://127.0.0.1:0\"", "", t, &backend.url());
        let (relay, seen) = recording_relay(&e.addr("bus"));
        let i = ingress(&dir, "ingress.toml", &relay, t);
        wait_peer_up(&i.addr("admin"));
        let mut c = connect(&i.addr("chat"));
        let mut msg = MARKER.to_vec();
        msg.extend_from_slice(b"\n");
        roundtrip(&mut c, &msg);
        drop(c);
        std::thread::sleep(Duration::from_millis(200));
        let seen = seen.lock().unwrap().clone();
        let found = seen.windows(MARKER.len()).any(|w| w == MARKER);
        assert!(seen.len() > 100, "the relay saw {} bytes", seen.len());
        if tls {
            assert!(!found, "the marker crossed in clear under TLS");
            // What the relay saw starts with a TLS handshake record (a ClientHello).
            assert_eq!(&seen[..2], &[0x16, 0x03], "{:?}", &seen[..8]);
        } else {
            assert!(found, "the control run without TLS did not see the marker");
        }
    }
}

#[test]
fn sighup_loads_a_new_certificate_for_new_transports_and_keeps_established_sessions() {
    let dir = TempDir::new("tls-reload");
    let pki = Pki::new(&dir);
    // The egress reads its certificate from files that are replaced in place.
    let served = pki.issue("served", "busway node 1", "0x1001");
    let backend = backends::echo();
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "",
        Some(&pki.section("served", "ca", "")),
        &backend.url(),
    );
    let i = ingress(
        &dir,
        "ingress.toml",
        &e.url("bus"),
        Some(&pki.section("node", "ca", "")),
    );
    wait_peer_up(&i.addr("admin"));
    let mut session = connect(&i.addr("chat"));
    roundtrip(&mut session, b"before\n");
    let bus = e.addr("bus");
    let cert = pki.served_cert(&["-connect", &bus]).expect("handshake");
    assert!(cert.contains("serial=1001"), "{cert}");

    // Renewed: a new key and certificate at the same paths.
    let renewed = pki.issue("renewed", "busway node 2", "0x2002");
    std::fs::copy(&renewed.cert, &served.cert).unwrap();
    std::fs::copy(&renewed.key, &served.key).unwrap();
    e.signal(1);
    assert!(
        wait_count(&e, "busway_config_reloads_total{result=\"ok\"}", 1.0),
        "{}",
        e.stderr()
    );
    let cert = pki.served_cert(&["-connect", &bus]).expect("handshake");
    assert!(cert.contains("serial=2002"), "{cert}");
    assert!(cert.contains("busway node 2"), "{cert}");
    // The established transport and its session go on, and new sessions use it.
    roundtrip(&mut session, b"after\n");
    roundtrip(&mut connect(&i.addr("chat")), b"new session\n");
    assert_eq!(count(&i, TLS_FAILURES), 0.0, "{}", i.stderr());

    // A reload whose certificate cannot be read is refused; the renewed one stays in force.
    std::fs::write(&served.cert, "not a certificate\n").unwrap();
    e.signal(1);
    assert!(
        wait_count(&e, "busway_config_reloads_total{result=\"error\"}", 1.0),
        "{}",
        e.stderr()
    );
    assert!(logged(&e, "bus.tls.cert"), "{}", e.stderr());
    let cert = pki.served_cert(&["-connect", &bus]).expect("handshake");
    assert!(cert.contains("serial=2002"), "{cert}");
    roundtrip(&mut session, b"still\n");
}

#[test]
fn unreadable_tls_files_are_configuration_errors_before_anything_is_bound() {
    let dir = TempDir::new("tls-bad-files");
    let pki = Pki::new(&dir);
    // The node's bus address is held by the test all along: a node that bound its listeners
    // before reading its TLS files would fail there first, with a bind error (exit 1) that names
    // the address, not with the configuration error (exit 2) that names the TLS key.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let missing = dir.path("missing.crt");
    let bus =
        |tls: String| format!("[bus]\nlisten = [\"tcp://127.0.0.1:{port}\"]\n[bus.tls]\n{tls}");
    let cases = [
        (
            bus(format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                missing.display(),
                pki.path("node.key").display()
            )),
            "bus.tls.cert",
            missing.display().to_string(),
        ),
        (
            // A certificate where the key should be.
            bus(format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                pki.path("node.crt").display(),
                pki.path("node.crt").display()
            )),
            "bus.tls.key",
            pki.path("node.crt").display().to_string(),
        ),
        (
            // A key that belongs to another certificate.
            bus(format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                pki.path("node.crt").display(),
                pki.path("ca.key").display()
            )),
            "bus.tls.key",
            pki.path("ca.key").display().to_string(),
        ),
        (
            // A CA file that holds no certificate.
            bus(format!(
                "cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
                pki.path("node.crt").display(),
                pki.path("node.key").display(),
                pki.path("node.key").display()
            )),
            "bus.tls.ca",
            pki.path("node.key").display().to_string(),
        ),
        (
            // The admin API's files, likewise, with the admin address held.
            format!(
                "[admin]\nlisten = \"tcp://127.0.0.1:{port}\"\n[admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                missing.display(),
                pki.path("node.key").display()
            ),
            "admin.tls.cert",
            missing.display().to_string(),
        ),
    ];
    for (body, key, file) in cases {
        let toml = format!("[node]\nname = \"n\"\n{body}");
        let path = dir.write("bad.toml", &toml);
        let (code, out, err) = run_to_end(&["run", "-c", path.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{key}: {err}");
        assert!(err.contains(key) && err.contains(&file), "{key}: {err}");
        assert!(!err.contains("Address already in use"), "{key}: {err}");
        assert!(!out.contains("listening"), "{key}: {out}");
        // The key file's contents never appear in the message.
        let key_pem = std::fs::read_to_string(pki.path("node.key")).unwrap();
        let body_line = key_pem.lines().nth(1).unwrap();
        assert!(!err.contains(body_line), "{key}: {err}");
    }
    // The control: with good files the same held address fails the bind, exit 1.
    let toml = format!(
        "[node]\nname = \"n\"\n{}",
        bus(pki.section("node", "ca", ""))
    );
    let path = dir.write("good.toml", &toml);
    let (code, _, err) = run_to_end(&["run", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&port.to_string()), "{err}");
    drop(held);
}

#[test]
fn the_admin_api_is_served_over_https_and_plain_http_fails() {
    let dir = TempDir::new("tls-admin");
    let pki = Pki::new(&dir);
    let toml = format!(
        "[node]\nname = \"n\"\n[admin]\nlisten = \"tcp://127.0.0.1:0\"\n[admin.tls]\n{}",
        pki.section("node", "ca", "client_auth = \"none\"")
    );
    let p = Proc::run_toml(&dir, "admin.toml", &toml);
    // The start-up line stays tcp://.
    let url = p.url("admin");
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    let addr = p.addr("admin");
    let https = format!("https://{addr}");
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl")
    };
    let ok = curl(&[
        "--cacert",
        pki.ca("ca").to_str().unwrap(),
        &format!("{https}/healthz"),
    ]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok", "{ok:?}");
    // Not trusted without the CA.
    let untrusted = curl(&[&format!("{https}/healthz")]);
    assert!(!untrusted.status.success(), "{untrusted:?}");
    // Plain HTTP gets no HTTP answer.
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // busway status takes the https:// URL and the CA.
    let ca = pki.ca("ca");
    let (code, out, err) = run_to_end(
        &["status", "--admin", &https, "--ca", ca.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SERVICES"), "{out}");
    let other = pki.ca("other-ca");
    let (code, _, err) = run_to_end(
        &["status", "--admin", &https, "--ca", other.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{err}");
}

#[test]
fn the_admin_api_can_require_client_certificates() {
    let dir = TempDir::new("tls-admin-mtls");
    let pki = Pki::new(&dir);
    let toml = format!(
        "[node]\nname = \"n\"\n[admin]\nlisten = \"tcp://127.0.0.1:0\"\n[admin.tls]\n{}",
        pki.section("node", "ca", "client_auth = \"required\"")
    );
    let p = Proc::run_toml(&dir, "admin.toml", &toml);
    let url = format!("https://{}/healthz", p.addr("admin"));
    let ca = pki.ca("ca");
    let base = ["-sS", "--max-time", "5", "--cacert", ca.to_str().unwrap()];
    let without = std::process::Command::new("curl")
        .args(base)
        .arg(&url)
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&without.stdout), "ok");
    let with = std::process::Command::new("curl")
        .args(base)
        .args(["--cert", pki.path("node.crt").to_str().unwrap()])
        .args(["--key", pki.path("node.key").to_str().unwrap()])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&with.stdout), "ok", "{with:?}");
}

#[test]
fn handshake_timeout_closes_silent_connections_from_accept_with_and_without_tls() {
    let dir = TempDir::new("tls-timeout");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    for tls in [true, false] {
        let section = pki.section("node", "ca", "");
        let e = egress(
            &dir,
            "\"tcp://127.0.0.1:0\"",
            "handshake_timeout = \"1s\"",
            tls.then_some(section.as_str()),
            &backend.url(),
        );
        let start = Instant::now();
        let mut c = TcpStream::connect(e.addr("bus")).unwrap();
        // Closed after about a second, not at once and not after the default 5 s: under TLS
        // without a byte, in plaintext after a GoAway that says why.
        c.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let mut got = Vec::new();
        let ended = c.read_to_end(&mut got);
        let took = start.elapsed();
        assert!(ended.is_ok(), "tls {tls}: {ended:?} after {took:?}");
        assert_eq!(got.is_empty(), tls, "tls {tls}: {got:?}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(3500),
            "tls {tls}: closed after {took:?}"
        );
        assert!(wait_count(&e, TIMEOUTS, 1.0), "tls {tls}: {}", e.stderr());
    }
}

#[test]
fn max_transports_refuses_connections_over_the_limit_at_once() {
    let dir = TempDir::new("tls-max-transports");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "max_transports = 2\nhandshake_timeout = \"10s\"",
        Some(&pki.section("node", "ca", "")),
        &backend.url(),
    );
    // Every limit is shown from the start, at zero.
    for limit in [
        "max_sessions",
        "max_sessions_per_client",
        "new_sessions_per_client",
        "max_transports",
    ] {
        let series = format!("busway_limit_rejections_total{{limit=\"{limit}\"}}");
        assert_eq!(metric(&e.addr("admin"), &series), Some(0.0), "{series}");
    }
    let i = ingress(
        &dir,
        "ingress.toml",
        &e.url("bus"),
        Some(&pki.section("node", "ca", "")),
    );
    wait_peer_up(&i.addr("admin"));
    let bus = e.addr("bus");
    // The ingress's transport is one; a silent connection is the second.
    let mut second = TcpStream::connect(&bus).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(&bus).unwrap();
    let start = Instant::now();
    assert!(closed_silently(&mut third, Duration::from_secs(3)));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(wait_count(&e, MAX_TRANSPORTS, 1.0), "{}", e.stderr());
    assert!(logged(&e, "max_transports"), "{}", e.stderr());
    // The second is still open, and the session traffic goes on.
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(
        matches!(second.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the connection within the limit was closed"
    );
    roundtrip(&mut connect(&i.addr("chat")), b"still carried\n");
    // Once it goes, there is room again.
    drop(second);
    let ok = wait_for(Duration::from_secs(5), || {
        let mut c = TcpStream::connect(&bus).unwrap();
        !closed_silently(&mut c, Duration::from_millis(300))
    });
    assert!(ok, "no room after a connection closed");

    // A reload raises the limit and shortens handshake_timeout: both apply to the connections
    // accepted after it (the ingress's transport, accepted before, stays up).
    let toml = node_toml(
        "egress",
        "listen = [\"tcp://127.0.0.1:0\"]\nmax_transports = 3\nhandshake_timeout = \"1s\"",
        Some(&pki.section("node", "ca", "")),
        &format!("backends = [\"{}\"]", backend.url()),
    );
    dir.write("egress.toml", &toml);
    e.signal(1);
    assert!(
        wait_count(&e, "busway_config_reloads_total{result=\"ok\"}", 1.0),
        "{}",
        e.stderr()
    );
    let refused = count(&e, MAX_TRANSPORTS);
    let start = Instant::now();
    let mut admitted: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&bus).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = TcpStream::connect(&bus).unwrap();
    assert!(closed_silently(&mut fourth, Duration::from_secs(3)));
    assert!(
        wait_count(&e, MAX_TRANSPORTS, refused + 1.0),
        "{}",
        e.stderr()
    );
    // The two within the new limit are closed by the new handshake_timeout, about a second
    // after their accept, not the 10 s the egress started with.
    for c in &mut admitted {
        assert!(closed_silently(c, Duration::from_secs(5)));
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    roundtrip(
        &mut connect(&i.addr("chat")),
        b"still up after the reload\n",
    );
}

#[test]
fn a_thousand_silent_connections_do_not_keep_a_peer_out_and_time_out() {
    // 1,000 silent connections and their accepted ends in two processes; this one holds 1,000.
    rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
    let dir = TempDir::new("tls-slowloris");
    let pki = Pki::new(&dir);
    let backend = backends::echo();
    let e = egress(
        &dir,
        "\"tcp://127.0.0.1:0\"",
        "handshake_timeout = \"4s\"",
        Some(&pki.section("node", "ca", "")),
        &backend.url(),
    );
    let bus = e.addr("bus");
    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&bus).expect("connect"))
        .collect();
    // A legitimate peer still gets its transport up and carries a session meanwhile.
    let i = ingress(
        &dir,
        "ingress.toml",
        &e.url("bus"),
        Some(&pki.section("node", "ca", "")),
    );
    wait_peer_up(&i.addr("admin"));
    roundtrip(&mut connect(&i.addr("chat")), b"through the crowd\n");
    assert!(
        opened.elapsed() < Duration::from_secs(4),
        "the session came only after {:?}",
        opened.elapsed()
    );
    // Then every silent one is closed and counted.
    for c in &mut silent {
        let left = Duration::from_secs(10).saturating_sub(opened.elapsed());
        assert!(closed_silently(c, left.max(Duration::from_millis(10))));
    }
    assert!(wait_count(&e, TIMEOUTS, 1000.0), "{}", count(&e, TIMEOUTS));
    // The peer's transport is not among them.
    roundtrip(&mut connect(&i.addr("chat")), b"still up\n");
    assert_eq!(count(&e, TLS_FAILURES), 0.0);
}
