//! Shared set-ups for the integration tests: an egress node in front of a backend and an ingress
//! node in front of it, both real `busway` processes on loopback port 0.

#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub use busway_test_support::{backends, forward, http, witness, Proc, TempDir};

pub mod discovery;
pub mod grpc;
pub mod lan;
pub mod peer;
pub mod pki;

pub const SECRET: &str = "s3cret-for-tests-only";

/// An egress node serving `chat` from `backend_url`.
pub fn egress_toml(backend_url: &str, extra: &str) -> String {
    format!(
        r#"
[node]
name = "egress"
shutdown_grace = "2s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
listen = ["tcp://127.0.0.1:0"]
secret = "{SECRET}"
[[service]]
name = "chat"
backends = ["{backend_url}"]
connect_timeout = "1s"
{extra}
"#
    )
}

/// An ingress node carrying `chat` to `peer_url`.
pub fn ingress_toml(peer_url: &str, extra: &str) -> String {
    format!(
        r#"
[node]
name = "ingress"
shutdown_grace = "2s"
[admin]
listen = "tcp://127.0.0.1:0"
[bus]
secret = "{SECRET}"
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
peers = ["{peer_url}"]
connect_timeout = "1s"
{extra}
"#
    )
}

/// A running ingress -> egress chain in front of `backend_url`.
pub struct Chain {
    pub dir: TempDir,
    pub egress: Proc,
    pub ingress: Proc,
}

impl Chain {
    pub fn new(backend_url: &str) -> Chain {
        Chain::with(&egress_toml(backend_url, ""), |bus| ingress_toml(bus, ""))
    }

    /// An egress from `egress_cfg` and an ingress from `ingress_cfg(egress bus URL)`, once the
    /// transport between them is up.
    pub fn with(egress_cfg: &str, ingress_cfg: impl FnOnce(&str) -> String) -> Chain {
        let dir = TempDir::new("chain");
        let egress = Proc::run_toml(&dir, "egress.toml", egress_cfg);
        let ingress = Proc::run_toml(&dir, "ingress.toml", &ingress_cfg(&egress.url("bus")));
        wait_peer_up(&ingress.addr("admin"));
        Chain {
            dir,
            egress,
            ingress,
        }
    }

    /// `["a", "b"]` as a TOML array of strings.
    pub fn toml_list(items: &[String]) -> String {
        let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// Connects a client to the ingress.
    pub fn client(&self) -> TcpStream {
        connect(&self.ingress.addr("chat"))
    }
}

/// An egress config whose `chat` service fans out to `backends` in `mode`.
pub fn egress_fan_toml(backends: &[String], mode: &str, extra: &str) -> String {
    egress_toml("tcp://127.0.0.1:1", &format!("mode = \"{mode}\"\n{extra}")).replace(
        "backends = [\"tcp://127.0.0.1:1\"]",
        &format!("backends = {}", Chain::toml_list(backends)),
    )
}

/// An ingress config whose `chat` service fans out (or not) over `peers` in `mode`.
pub fn ingress_over_toml(peers: &[String], mode: &str, extra: &str) -> String {
    ingress_toml(&peers[0], &format!("mode = \"{mode}\"\n{extra}")).replace(
        &format!("peers = [\"{}\"]", peers[0]),
        &format!("peers = {}", Chain::toml_list(peers)),
    )
}

/// An egress whose `chat` service fans out to `backends` in `mode`, and an ingress in front.
pub fn fan_chain(backends: &[String], mode: &str, extra: &str) -> Chain {
    Chain::with(&egress_fan_toml(backends, mode, extra), |bus| {
        ingress_toml(bus, "")
    })
}

pub fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Waits until the node at `admin` lists an established transport.
pub fn wait_peer_up(admin: &str) {
    wait_peers_up(admin, 1);
}

/// Waits until the node at `admin` lists exactly `n` established transports.
pub fn wait_peers_up(admin: &str, n: usize) {
    let up = || {
        http::get(admin, "/v1/peers")
            .body
            .matches("\"state\":\"up\"")
            .count()
    };
    let ok = wait_for(Duration::from_secs(10), || up() == n);
    let peers = http::get(admin, "/v1/peers").body;
    assert!(ok, "{} transports up, not {n}: {peers}", up());
}

/// Writes `data` from another thread, half-closes, and returns everything read back until EOF.
pub fn send_all_and_read(c: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut w = c.try_clone().expect("clone");
    let sent = data.to_vec();
    let t = std::thread::spawn(move || {
        w.write_all(&sent).expect("write");
        w.shutdown(std::net::Shutdown::Write).expect("shutdown");
    });
    let got = read_all(c);
    t.join().expect("writer");
    got
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Reads until EOF.
pub fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Reads exactly `n` bytes.
pub fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    s.read_exact(&mut out).expect("read_exact");
    out
}

/// Sends a line and expects it echoed.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    assert_eq!(read_n(s, msg.len()), msg);
}

/// A metric's value from `/metrics` text (the first line starting with `series`).
pub fn metric(admin: &str, series: &str) -> Option<f64> {
    let text = http::get(admin, "/metrics").body;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
