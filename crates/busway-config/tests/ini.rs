//! The Cloudbus INI format through the public API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use busway_config::*;

mod common;
use common::*;

fn parse(text: &str, role: Role) -> NodeConfig {
    parse_ini(text, "cloudbus.ini", role).unwrap_or_else(|e| panic!("{e}"))
}

const BOTH_ROLES: [Role; 2] = [Role::Controller, Role::Segment];

const DOC_EXAMPLE: &str =
    "[Cloudbus]\n\n[ServiceName]\nbind=tcp://127.0.0.1:8080\nserver=tcp://127.0.0.1:8081\n";

#[test]
fn controller_mapping() {
    let c = parse(DOC_EXAMPLE, Role::Controller);
    assert!(c.bus.listen.is_empty());
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!(s.name, "ServiceName");
    assert_eq!(s.listen, vec![tcp("127.0.0.1", 8080)]);
    assert_eq!(s.targets, Targets::Peers(vec![tcp("127.0.0.1", 8081)]));
    assert_eq!(s.mode, Mode::OneToOne);
}

#[test]
fn segment_mapping() {
    let c = parse(DOC_EXAMPLE, Role::Segment);
    assert_eq!(
        c.bus.listen,
        vec![BusListener {
            address: tcp("127.0.0.1", 8080),
            service: Some("ServiceName".into())
        }]
    );
    let s = &c.services[0];
    assert_eq!(s.name, "ServiceName");
    assert!(s.listen.is_empty());
    assert_eq!(s.targets, Targets::Backends(vec![tcp("127.0.0.1", 8081)]));
    assert_eq!(s.mode, Mode::OneToOne);
}

#[test]
fn node_and_service_defaults_match_toml() {
    for role in BOTH_ROLES {
        let c = parse(DOC_EXAMPLE, role);
        assert_eq!(c.node.name, hostname());
        assert_eq!(c.node.namespace, "default");
        assert_eq!(c.node.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.admin, None);
        assert!(c.bus.secret.is_none());
        assert_eq!(c.bus.connections_per_peer, 1);
        assert_eq!(c.dns.min_ttl, Duration::from_secs(1));
        let s = &c.services[0];
        assert_eq!(s.balance, Balance::RoundRobin);
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.latch_timeout, Duration::ZERO);
        assert_eq!(s.idle_timeout, Duration::ZERO);
        assert_eq!(s.health_check, None);
        assert!(s.mirror.is_empty());
    }
}

#[test]
fn names_are_case_insensitive() {
    let text = "[CLOUDBUS]\n[Chat]\nBIND=tcp://127.0.0.1:1\nSeRvEr=unix:///run/app.sock\nMode=ONE TO ONE\n";
    let c = parse(text, Role::Segment);
    let s = &c.services[0];
    assert_eq!(s.name, "Chat");
    assert_eq!(
        s.targets,
        Targets::Backends(vec![Address::Unix(PathBuf::from("/run/app.sock"))])
    );
    assert_eq!(s.mode, Mode::OneToOne);
    // Mode names are case-insensitive, as Cloudbus wrote them.
    let c = parse(
        "[a]\nbind=tcp://127.0.0.1:1\nserver=tcp://b:1\nMODE = Half Duplex\n",
        Role::Segment,
    );
    assert_eq!(c.services[0].mode, Mode::HalfDuplex);
    let c = parse(
        "[a]\nbind=tcp://127.0.0.1:1\nserver=tcp://b:1\nmode=FULL duplex\n",
        Role::Controller,
    );
    assert_eq!(c.services[0].mode, Mode::FullDuplex);
}

#[test]
fn repeated_server_and_continuation_lines() {
    let text = "\
[svc]
bind=tcp://127.0.0.1:9000
server=tcp://10.0.0.1:1
server=tcp://10.0.0.2:1
    tcp://10.0.0.3:1

\ttcp://[::1]:1
mode=one to one
";
    let c = parse(text, Role::Segment);
    assert_eq!(
        c.services[0].targets.addresses(),
        [
            tcp("10.0.0.1", 1),
            tcp("10.0.0.2", 1),
            tcp("10.0.0.3", 1),
            tcp("::1", 1)
        ]
    );
}

#[test]
fn server_with_addresses_only_on_continuation_lines() {
    let text =
        "[svc]\nbind=tcp://127.0.0.1:9000\nmode=one to one\nserver=\n  tcp://a:1\n  tcp://b:2\n";
    let c = parse(text, Role::Segment);
    assert_eq!(
        c.services[0].targets.addresses(),
        [tcp("a", 1), tcp("b", 2)]
    );
}

#[test]
fn comments_and_blank_lines() {
    let text = "\
# a comment
; another

[Cloudbus] ; trailing
[svc]   # trailing
  # indented comment, not a continuation
bind = tcp://127.0.0.1:9000   # where clients connect
server = tcp://127.0.0.1:9001 ; the backend

";
    let c = parse(text, Role::Controller);
    assert_eq!(c.services[0].listen, vec![tcp("127.0.0.1", 9000)]);
    assert_eq!(c.services[0].targets.addresses(), [tcp("127.0.0.1", 9001)]);
}

#[test]
fn cloudbus_section_is_optional_and_takes_no_keys() {
    let c = parse(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=tcp://a:1\n",
        Role::Segment,
    );
    assert_eq!(c.services.len(), 1);
    let c = parse("[Cloudbus]\n", Role::Segment);
    assert!(c.services.is_empty());
    assert_ini_err(
        "[Cloudbus]\nthreads=4\n",
        Role::Segment,
        2,
        "Cloudbus.threads",
        "unknown key `threads`",
    );
}

#[test]
fn several_services() {
    let text = "[a]\nbind=tcp://127.0.0.1:1\nserver=tcp://x:1\n[b]\nbind=unix:///tmp/b.sock\nserver=tcp://y:1\n";
    let c = parse(text, Role::Segment);
    let names: Vec<_> = c.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(c.bus.listen[1].service.as_deref(), Some("b"));
    assert_eq!(
        c.bus.listen[1].address,
        Address::Unix(PathBuf::from("/tmp/b.sock"))
    );
}

#[test]
fn several_servers_default_to_half_duplex() {
    for role in BOTH_ROLES {
        let c = parse(
            "[svc]\nbind=tcp://127.0.0.1:1\n\nserver=tcp://a:1\nserver=tcp://b:1\n",
            role,
        );
        assert_eq!(c.services[0].mode, Mode::HalfDuplex);
    }
}

#[test]
fn errors_with_lines_and_keys() {
    let r = Role::Segment;
    assert_ini_err("bind=tcp://a:1\n", r, 1, "", "outside any section");
    assert_ini_err(
        "[a]\n[b]\n[A]\n",
        r,
        3,
        "A",
        "duplicate section [A] (first on line 1",
    );
    assert_ini_err("[svc\n", r, 1, "", "missing ']'");
    assert_ini_err("[svc]\nbind tcp://a:1\n", r, 2, "svc", "expected KEY=VALUE");
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=tcp://a:1\nbackends=tcp://b:1\n",
        r,
        4,
        "svc.backends",
        "unknown key `backends`, expected one of `bind`, `server` (or `backend`), `mode`",
    );
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nbind=tcp://127.0.0.1:2\n",
        r,
        3,
        "svc.bind",
        "exactly one",
    );
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\n  tcp://127.0.0.1:2\n",
        r,
        3,
        "svc.bind",
        "exactly one",
    );
    assert_ini_err(
        "\n[svc]\nserver=tcp://a:1\n",
        r,
        2,
        "svc.bind",
        "missing key `bind`",
    );
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\n",
        r,
        1,
        "svc.server",
        "missing key `server`",
    );
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=\n",
        r,
        1,
        "svc.server",
        "missing key `server`",
    );
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=tcp://a\n",
        r,
        3,
        "svc.server",
        "invalid address \"tcp://a\"",
    );
    assert_ini_err(
        "[svc]\nbind=127.0.0.1:1\nserver=tcp://a:1\n",
        r,
        2,
        "svc.bind",
        "missing scheme",
    );
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=tcp://a:1\nmode=simplex\n",
        r,
        4,
        "svc.mode",
        "invalid mode \"simplex\"",
    );
    assert_ini_err(
        "[my svc]\nbind=tcp://127.0.0.1:1\nserver=tcp://a:1\n",
        r,
        1,
        "my svc",
        "not allowed",
    );
    assert_ini_err(
        "[a]\nbind=tcp://127.0.0.1:5\nserver=tcp://x:1\n[b]\nbind=tcp://127.0.0.1:5\nserver=tcp://y:1\n",
        r,
        5,
        "b.bind",
        "already the bind address of [a]",
    );
}

#[test]
fn port_zero_binds_may_repeat() {
    let text = "[a]\nbind=tcp://127.0.0.1:0\nserver=tcp://x:1\n[b]\nbind=tcp://127.0.0.1:0\nserver=tcp://y:1\n";
    assert_eq!(parse(text, Role::Controller).services.len(), 2);
}

#[test]
fn discovery_targets_and_grpc_listeners_not_yet() {
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=label:app=chat\n",
        Role::Segment,
        3,
        "svc.server",
        "label: targets need [discovery], which only a TOML file can configure",
    );
    assert_ini_err(
        "[svc]\nbind=mdns:_busway._tcp.local\nserver=tcp://a:1\n",
        Role::Segment,
        2,
        "svc.bind",
        "bus listener must be a tcp:// or unix://",
    );
    assert_ini_err(
        "[svc]\nbind=grpc://127.0.0.1:1\nserver=tcp://a:1\n",
        Role::Controller,
        2,
        "svc.bind",
        "grpc:// listeners are not yet supported",
    );
}

/// A segment whose server is a gRPC upstream is a gateway for the sessions the bus brings it.
#[test]
fn a_segment_may_serve_grpc_upstreams() {
    let c = parse(
        "[plex]\nbind=tcp://127.0.0.1:0\nserver=grpc://127.0.0.1:50051\n",
        Role::Segment,
    );
    let s = &c.services[0];
    assert_eq!(s.grpc.map(|g| g.distribute), Some(Distribute::PerClient));
    assert_eq!(s.mode, Mode::OneToOne);
}

#[test]
fn load_ini_reads_files_and_reports_read_errors() {
    let dir = std::env::temp_dir().join(format!("busway-config-ini-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("segment.ini");
    std::fs::write(&path, DOC_EXAMPLE).unwrap();
    let c = load_ini(&path, Role::Segment).unwrap();
    assert_eq!(c.bus.listen.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    let e = load_ini(Path::new("/nonexistent/segment.ini"), Role::Segment).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (None, ""));
    assert!(e.message.contains("No such file"));
}
