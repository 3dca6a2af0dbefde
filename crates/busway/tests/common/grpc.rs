//! Gateway set-ups: reference upstreams (`busway-upstream`) and a busway node whose service
//! demultiplexes to them, all real processes on loopback port 0.

use std::time::Duration;

use serde_json::Value;

use super::{http, wait_for, Proc, TempDir};

/// A reference upstream started with `args` (plus `--listen 127.0.0.1:0`).
pub fn upstream(args: &[&str]) -> Proc {
    Proc::upstream(args)
}

/// Its `grpc://IP:PORT` URL.
pub fn up_url(p: &Proc) -> String {
    p.url("upstream")
}

/// The `bidirectionalStreaming` calls an upstream has seen start, by number (its `call
/// bidirectionalStreaming N` lines).
pub fn calls_started(p: &Proc) -> Vec<u64> {
    lines_of_calls(p, "")
}

/// The calls the gateway ended cleanly, having sent everything (`call bidirectionalStreaming N
/// ended`).
pub fn calls_ended(p: &Proc) -> Vec<u64> {
    lines_of_calls(p, " ended")
}

fn lines_of_calls(p: &Proc, suffix: &str) -> Vec<u64> {
    p.stdout_lines()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("call bidirectionalStreaming ")?
                .strip_suffix(suffix)?
                .parse()
                .ok()
        })
        .collect()
}

/// A node named `gw` with an admin listener and one gateway service, `plex`, listening on TCP
/// port 0 and using `upstreams`; `grpc` is the body of its `[service.grpc]` table.
pub fn gateway_toml(upstreams: &[String], service_extra: &str, grpc: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"
[node]
name = "gw"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[[service]]
name = "plex"
listen = ["tcp://127.0.0.1:0"]
backends = [{}]
connect_timeout = "1s"
{service_extra}
[service.grpc]
ready_interval = "100ms"
live_interval = "100ms"
live_timeout = "500ms"
{grpc}
"#,
        list.join(", ")
    )
}

/// A gateway node in front of `upstreams`, once `healthy` of them are up.
pub struct Gateway {
    pub dir: TempDir,
    pub node: Proc,
}

impl Gateway {
    pub fn start(upstreams: &[String], grpc: &str, healthy: usize) -> Gateway {
        Self::start_toml(&gateway_toml(upstreams, "", grpc), healthy)
    }

    pub fn start_toml(toml: &str, healthy: usize) -> Gateway {
        let dir = TempDir::new("grpc");
        let node = Proc::run_toml(&dir, "gw.toml", toml);
        let g = Gateway { dir, node };
        g.wait_healthy(healthy);
        g
    }

    pub fn admin(&self) -> String {
        self.node.addr("admin")
    }

    pub fn addr(&self) -> String {
        self.node.addr("plex")
    }

    pub fn upstreams(&self) -> Vec<Value> {
        list(&self.admin(), "/v1/services/plex/upstreams")
    }

    pub fn downstreams(&self) -> Vec<Value> {
        list(&self.admin(), "/v1/services/plex/downstreams")
    }

    /// Waits until exactly `n` upstreams are up.
    pub fn wait_healthy(&self, n: usize) {
        let up = || {
            self.upstreams()
                .iter()
                .filter(|u| u["state"] == "up")
                .count()
        };
        let ok = wait_for(Duration::from_secs(10), || up() == n);
        assert!(ok, "{} upstreams up, not {n}: {:?}", up(), self.upstreams());
    }

    /// Waits until `n` downstreams are attached.
    pub fn wait_downstreams(&self, n: usize) -> Vec<Value> {
        let ok = wait_for(Duration::from_secs(10), || self.downstreams().len() == n);
        let d = self.downstreams();
        assert!(ok, "{} downstreams, not {n}: {d:?}", d.len());
        d
    }

    /// The downstream whose client is `c` (by its local address), as the admin API lists it.
    pub fn downstream_of(&self, c: &std::net::TcpStream) -> Value {
        let local = c.local_addr().map(|a| a.to_string()).unwrap_or_default();
        self.downstreams()
            .into_iter()
            .find(|d| d["client"] == local.as_str())
            .unwrap_or(Value::Null)
    }

    /// A metric of the gateway node.
    pub fn metric(&self, series: &str) -> Option<f64> {
        super::metric(&self.admin(), series)
    }

    /// The upstream id a downstream is assigned to.
    pub fn upstream_of(&self, uuid: &str) -> String {
        self.downstreams()
            .iter()
            .find(|d| d["uuid"] == uuid)
            .map(|d| d["upstream"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }
}

pub fn list(admin: &str, path: &str) -> Vec<Value> {
    let a = http::get(admin, path);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", a.body))
}

/// A UUID v4, lowercase and hyphenated.
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// One of the three sizes (min, default, max) in `/proc/sys/net/ipv4/NAME` (`tcp_rmem`,
/// `tcp_wmem`): what the kernel may buffer for a socket, for tests that bound what a stalled
/// connection can hold.
pub fn tcp_buffer(name: &str, field: usize) -> usize {
    let path = format!("/proc/sys/net/ipv4/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split_whitespace()
        .nth(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{path}: {text}"))
}
