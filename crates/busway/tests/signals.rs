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
