//! `[service.grpc]` and `grpc://` backends: defaults, every key, and the rules that keep a
//! gateway service from carrying keys that only mean something for socket targets.

use std::time::Duration;

use busway_config::*;

mod common;
use common::*;

const SVC: &str = "[[service]]\nname = \"plex\"\nlisten = [\"tcp://127.0.0.1:0\"]\n";

#[test]
fn upstreams_make_a_gateway_with_every_default() {
    let c = parse(&format!(
        "{SVC}backends = [\"grpc://127.0.0.1:1\", \"grpcs://up.example:443\"]\n"
    ));
    let s = &c.services[0];
    let g = s.grpc.expect("a gateway");
    assert_eq!(g.distribute, Distribute::PerClient);
    assert_eq!(g.ready_interval, Duration::from_secs(1));
    assert_eq!(g.ready_timeout, Duration::from_secs(1));
    assert_eq!(g.live_interval, Duration::from_secs(1));
    assert_eq!(g.live_timeout, Duration::from_secs(3));
    assert_eq!(g.active_window, Duration::from_secs(60));
    assert_eq!(g.upstream_wait, Duration::from_secs(5));
    assert!(!g.lifecycle_events);
    // Two upstreams are not a fan-out: a gateway spreads clients, it does not copy them.
    assert_eq!(s.mode, Mode::OneToOne);
}

#[test]
fn every_key_is_read() {
    let c = parse(&format!(
        "{SVC}backends = [\"grpc://127.0.0.1:1\"]\nbalance = \"least-sessions\"\n\
         [service.grpc]\ndistribute = \"per-chunk\"\nready_interval = \"250ms\"\n\
         ready_timeout = \"100ms\"\nlive_interval = \"200ms\"\nlive_timeout = \"1s\"\n\
         active_window = \"2s\"\nupstream_wait = \"0s\"\nlifecycle_events = true\n"
    ));
    let s = &c.services[0];
    assert_eq!(s.balance, Balance::LeastSessions);
    assert_eq!(
        s.grpc,
        Some(GrpcConfig {
            distribute: Distribute::PerChunk,
            ready_interval: Duration::from_millis(250),
            ready_timeout: Duration::from_millis(100),
            live_interval: Duration::from_millis(200),
            live_timeout: Duration::from_secs(1),
            active_window: Duration::from_secs(2),
            upstream_wait: Duration::ZERO,
            lifecycle_events: true,
        })
    );
    // And it renders to a file that reads back the same.
    let text = render_toml(&c);
    assert!(text.contains("[service.grpc]"), "{text}");
    assert!(!text.contains("mode ="), "{text}");
    assert_eq!(parse_toml(&text, "rendered.toml").unwrap(), c);
}

#[test]
fn bad_keys_and_values() {
    let up = "backends = [\"grpc://127.0.0.1:1\"]\n";
    assert_err(
        &format!("{SVC}{up}[service.grpc]\nretries = 3\n"),
        6,
        "service.grpc.retries",
        "unknown key `retries`",
    );
    assert_err(
        &format!("{SVC}{up}[service.grpc]\ndistribute = \"sticky\"\n"),
        6,
        "service.grpc.distribute",
        "expected per-client or per-chunk",
    );
    assert_err(
        &format!("{SVC}{up}[service.grpc]\nlifecycle_events = \"yes\"\n"),
        6,
        "service.grpc.lifecycle_events",
        "true or false",
    );
    assert_err(
        &format!("{SVC}{up}[service.grpc]\nlive_interval = \"0s\"\n"),
        6,
        "service.grpc.live_interval",
        "greater than 0s",
    );
    assert_err(
        &format!("{SVC}{up}[service.grpc]\nlive_interval = \"5s\"\nlive_timeout = \"5s\"\n"),
        7,
        "service.grpc.live_timeout",
        "longer than `live_interval`",
    );
}

#[test]
fn rules_for_a_gateway_service() {
    assert_err(
        &format!("{SVC}backends = [\n  \"grpc://127.0.0.1:1\",\n  \"tcp://127.0.0.1:2\",\n]\n"),
        6,
        "service.backends",
        "must all be grpc:// upstreams",
    );
    assert_err(
        &format!("{SVC}peers = [\"grpc://127.0.0.1:1\"]\n"),
        4,
        "service.peers",
        "backends, not bus peers",
    );
    assert_err(
        &format!("{SVC}backends = [\"grpc://127.0.0.1:1\"]\nmode = \"half-duplex\"\n"),
        5,
        "service.mode",
        "does not apply to a gRPC service",
    );
    assert_err(
        &format!("{SVC}backends = [\"grpc://127.0.0.1:1\"]\nmirror = [\"tcp://127.0.0.1:3\"]\n"),
        5,
        "service.mirror",
        "cannot have mirrors",
    );
    assert_err(
        &format!("{SVC}backends = [\"tcp://127.0.0.1:1\"]\n[service.grpc]\n"),
        5,
        "service.grpc",
        "applies only to a service whose backends are grpc://",
    );
}
