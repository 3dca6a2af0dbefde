//! CONTRACT section 1, signals: SIGTERM drains, SIGHUP reloads without dropping valid sessions.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_stops_accepting_lets_open_sessions_finish_then_exits_0() {
    let backend = backends::echo();
    let mut chain = Chain::new(&backend.url());
    let addr = chain.ingress.addr("chat");
    let mut c = chain.client();
    roundtrip(&mut c, b"open");
    chain.ingress.signal(15);
    // New clients are refused once the listener is closed...
    assert!(wait_for(Duration::from_secs(2), || {
        std::net::TcpStream::connect(&addr).is_err()
    }));
    // ...while the open session keeps working.
    roundtrip(&mut c, b"still open");
    assert!(
        chain
            .ingress
            .wait_exit(Duration::from_millis(300))
            .is_none(),
        "exited with a session open"
    );
    drop(c);
    let st = chain
        .ingress
        .wait_exit(Duration::from_secs(3))
        .expect("exit after the last session");
    assert_eq!(st.code(), Some(0));
}

/// Sessions end once their last bytes and fin are queued on their streams; SIGTERM must still
/// deliver those bytes, however slowly the bus drains (issue 10, item 7). Each backend shuts
/// its side at once, so every session ends as soon as its client's bytes are queued, and the
/// link to the egress is slow, so they are still queued at the ingress when it stops.
#[test]
fn sigterm_delivers_every_byte_the_sessions_queued_on_the_bus() {
    let (backend, got) = busway_test_support::witness::source_then_listen(0);
    let dir = TempDir::new("drain-bus");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_toml(&backend.url(), ""));
    let slow = forward::throttled_forward(&egress.addr("bus"), 8 << 20);
    let cfg = ingress_toml(&slow, "").replace("shutdown_grace = \"2s\"", "shutdown_grace = \"8s\"");
    let mut ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    wait_peer_up(&ingress.addr("admin"));
    const CLIENTS: usize = 32;
    const EACH: usize = 256 * 1024;
    let addr = ingress.addr("chat");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = connect(&addr);
                std::io::Write::write_all(&mut c, &vec![b'q'; EACH]).unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
                // The session ends at once; EOF comes back.
                let _ = read_all(&mut c);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    ingress.signal(15);
    let st = ingress
        .wait_exit(Duration::from_secs(10))
        .expect("exit within the grace");
    assert_eq!(st.code(), Some(0));
    let want = CLIENTS * EACH;
    assert!(
        wait_for(Duration::from_secs(5), || got.lock().unwrap().len() == want),
        "the backends got {} of {want} bytes",
        got.lock().unwrap().len()
    );
}

#[test]
fn sigterm_closes_sessions_left_after_the_grace_period() {
    let backend = backends::echo();
    let mut chain = Chain::new(&backend.url());
    let mut c = chain.client();
    roundtrip(&mut c, b"open");
    let start = Instant::now();
    chain.ingress.signal(15);
    let st = chain
        .ingress
        .wait_exit(Duration::from_secs(6))
        .expect("exit after grace");
    assert_eq!(st.code(), Some(0));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let mut buf = [0u8; 4];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
}

#[test]
fn sighup_adds_and_removes_services_and_keeps_open_sessions() {
    let backend = backends::echo();
    let dir = TempDir::new("hup");
    let egress_cfg = egress_toml(&backend.url(), "");
    let egress = Proc::run_toml(&dir, "e.toml", &egress_cfg);
    let ingress_path = dir.write("i.toml", &ingress_toml(&egress.url("bus"), ""));
    let ingress = Proc::start(&["run", "-c", ingress_path.to_str().unwrap()]);
    let admin = ingress.addr("admin");
    wait_peer_up(&admin);
    let mut c = connect(&ingress.addr("chat"));
    roundtrip(&mut c, b"before reload");

    // Add a service on a port we choose, keep `chat` as it is.
    let port = backends::closed_port();
    let added = ingress_toml(&egress.url("bus"), "")
        + &format!(
            "[[service]]\nname = \"extra\"\nlisten = [\"tcp://{port}\"]\npeers = [\"{}\"]\n",
            egress.url("bus")
        );
    std::fs::write(&ingress_path, added).unwrap();
    ingress.signal(1);
    assert!(wait_for(Duration::from_secs(3), || {
        std::net::TcpStream::connect(&port).is_ok()
    }));
    roundtrip(&mut c, b"after reload");
    assert_eq!(
        metric(&admin, "busway_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert!(http::get(&admin, "/v1/services")
        .body
        .contains("\"name\":\"extra\""));

    // An invalid file is rejected; the running configuration stays.
    std::fs::write(&ingress_path, "[[service]]\nname = 5\n").unwrap();
    ingress.signal(1);
    assert!(wait_for(Duration::from_secs(3), || metric(
        &admin,
        "busway_config_reloads_total{result=\"error\"}"
    ) == Some(1.0)));
    assert!(std::net::TcpStream::connect(&port).is_ok());
    roundtrip(&mut c, b"after bad reload");

    // Removing the service closes its listener.
    std::fs::write(&ingress_path, ingress_toml(&egress.url("bus"), "")).unwrap();
    ingress.signal(1);
    assert!(wait_for(Duration::from_secs(3), || {
        std::net::TcpStream::connect(&port).is_err()
    }));
    roundtrip(&mut c, b"still alive");
}
