//! `/metrics` as Prometheus reads it: `promtool check metrics` accepts the real scrape of an
//! ingress and of an egress that has sessions, a peer, a gRPC gateway service with a downstream,
//! and rejected bus bytes (CONTRACT section 8).
//!
//! promtool comes with Debian's `prometheus` package, which `.ci/run` installs. Without it this
//! test fails and says so: a skipped check would pass unseen.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::grpc::{up_url, upstream};
use common::*;

/// What `promtool check metrics` says of `text`, and whether it accepted it.
fn promtool(text: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: this test needs it (Debian package `prometheus`, \
             which .ci/run installs: apt-get install -y prometheus)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// The `Content-Type` of `GET /metrics`.
fn content_type(admin: &str) -> String {
    let mut s = TcpStream::connect(admin).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn promtool_accepts_the_scrape_of_nodes_with_sessions_a_peer_and_a_gateway() {
    let backend = backends::echo();
    let up = upstream(&[]);
    let plex = format!(
        "[[service]]\nname = \"plex\"\nlisten = [\"tcp://127.0.0.1:0\"]\nbackends = [\"{}\"]\n\
         [service.grpc]\nready_interval = \"100ms\"\n",
        up_url(&up)
    );
    let chain = Chain::with(&(egress_toml(&backend.url(), "") + &plex), |bus| {
        ingress_toml(bus, "")
    });
    let ingress = chain.ingress.addr("admin");
    let egress = chain.egress.addr("admin");

    // One session open, one finished; a gateway downstream; bytes that are not the protocol.
    let mut open = chain.client();
    roundtrip(&mut open, b"open");
    let mut done = chain.client();
    roundtrip(&mut done, b"done");
    drop(done);
    let mut downstream = connect(&chain.egress.addr("plex"));
    downstream.write_all(b"to the upstream").expect("write");
    let mut garbage = connect(&chain.egress.addr("bus"));
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    let _ = garbage.read(&mut [0u8; 64]);
    let ready =
        "busway_upstream_ready{service=\"plex\",upstream=\"".to_string() + &up_url(&up) + "\"}";
    assert!(
        wait_for(Duration::from_secs(10), || {
            metric(
                &ingress,
                "busway_sessions_total{service=\"chat\",outcome=\"ok\"}",
            ) == Some(1.0)
                && metric(&egress, "busway_grpc_downstreams{service=\"plex\"}") == Some(1.0)
                && metric(&egress, &ready) == Some(1.0)
                && http::get(&egress, "/metrics")
                    .body
                    .contains("busway_frames_rejected_total{")
        }),
        "{}",
        http::get(&egress, "/metrics").body
    );

    for (node, admin, families) in [
        (
            "ingress",
            &ingress,
            &["busway_sessions_active", "busway_peer_rtt_seconds"][..],
        ),
        (
            "egress",
            &egress,
            &[
                "busway_sessions_active",
                "busway_peer_transports",
                "busway_upstream_ready",
                "busway_grpc_downstreams",
                "busway_frames_rejected_total",
                "busway_session_setup_seconds",
            ][..],
        ),
    ] {
        let text = http::get(admin, "/metrics").body;
        for f in families {
            assert!(
                text.contains(&format!("# TYPE {f} ")),
                "{node}: no {f}:\n{text}"
            );
        }
        let (ok, said) = promtool(&text);
        assert!(ok, "promtool rejects the {node}'s /metrics: {said}\n{text}");
        let ct = content_type(admin);
        assert!(
            ct.starts_with("text/plain; version=0.0.4"),
            "{node}: content type {ct:?}"
        );
    }
}
