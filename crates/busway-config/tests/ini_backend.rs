//! CONTRACT section 4: `backend` is the same key as `server`, as Cloudbus 0.4 writes its own files.
//! The files under `tests/cloudbus-ini/` have the shapes Cloudbus ships (its installed
//! controller.ini and segment.ini, its benchmark configurations) and the layouts a hand-written
//! file may mix; each is read through `load_ini` and compared with the model it must become.

use std::path::{Path, PathBuf};

use busway_config::*;

mod common;
use common::*;

const BOTH_ROLES: [Role; 2] = [Role::Controller, Role::Segment];

fn unix(path: &str) -> Address {
    Address::Unix(PathBuf::from(path))
}

fn file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cloudbus-ini")
        .join(name)
}

fn load(name: &str, role: Role) -> NodeConfig {
    load_ini(&file(name), role).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(text: &str, role: Role) -> NodeConfig {
    parse_ini(text, "c.ini", role).unwrap_or_else(|e| panic!("{e}"))
}

/// The one service's targets, whichever kind the role makes them.
fn targets(c: &NodeConfig) -> &[Address] {
    c.services[0].targets.addresses()
}

#[test]
fn backend_means_server_in_both_roles() {
    let text = "[svc]\nbind=tcp://127.0.0.1:1\nbackend=tcp://10.0.0.1:2\n";
    let c = parse(text, Role::Controller);
    assert_eq!(
        c.services[0].targets,
        Targets::Peers(vec![tcp("10.0.0.1", 2)])
    );
    let c = parse(text, Role::Segment);
    assert_eq!(
        c.services[0].targets,
        Targets::Backends(vec![tcp("10.0.0.1", 2)])
    );
    // And exactly as `server=` would: the same text with the other key is the same model.
    for role in BOTH_ROLES {
        assert_eq!(
            parse(text, role),
            parse(&text.replace("backend", "server"), role)
        );
    }
}

#[test]
fn backend_is_case_insensitive_and_mixes_with_server_in_order() {
    let text =
        "[svc]\nbind=tcp://127.0.0.1:1\nBackEnd=tcp://a:1\nSERVER=tcp://b:1\nbackend=tcp://c:1\n";
    for role in BOTH_ROLES {
        let c = parse(text, role);
        assert_eq!(targets(&c), [tcp("a", 1), tcp("b", 1), tcp("c", 1)]);
        // Several entries and no mode: half duplex, counting both keys.
        assert_eq!(c.services[0].mode, Mode::HalfDuplex);
    }
}

#[test]
fn backend_continuation_lines_each_add_an_address() {
    let text = "[svc]\nbind=tcp://127.0.0.1:1\nbackend=tcp://a:1\n  tcp://b:1\n\n\ttcp://[::1]:1\nmode=one to one\nbackend=\n  unix:///run/x.sock\n";
    let c = parse(text, Role::Segment);
    assert_eq!(
        targets(&c),
        [tcp("a", 1), tcp("b", 1), tcp("::1", 1), unix("/run/x.sock")]
    );
    assert_eq!(c.services[0].mode, Mode::OneToOne);
}

#[test]
fn errors_on_backend_lines_name_the_backend_key() {
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nbackend=tcp://a:1\n  tcp://nope\n",
        Role::Segment,
        4,
        "svc.backend",
        "invalid address \"tcp://nope\"",
    );
    // An empty `backend=` with nothing below it is no target at all.
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nbackend=\n",
        Role::Controller,
        1,
        "svc.server",
        "missing key `server` (or `backend`)",
    );
    // A gRPC upstream named by `backend=` in a controller is reported at its own line and key.
    assert_ini_err(
        "[svc]\nbind=tcp://127.0.0.1:1\nserver=tcp://a:1\nbackend=grpc://127.0.0.1:2\n",
        Role::Controller,
        4,
        "svc.backend",
        "grpc:// upstreams are backends",
    );
}

/// conf/controller.ini and conf/segment.ini as Cloudbus 0.4 installs them: an SSH service whose
/// segment listens on a Unix socket.
#[test]
fn shipped_controller_and_segment_files() {
    let c = load("controller.ini", Role::Controller);
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!(s.name, "Service0");
    assert_eq!(s.listen, [tcp("0.0.0.0", 10022)]);
    assert_eq!(
        s.targets,
        Targets::Peers(vec![unix("/var/run/cloudbus/ssh.sock")])
    );
    assert_eq!(s.mode, Mode::OneToOne);
    assert!(c.bus.listen.is_empty());

    let c = load("segment.ini", Role::Segment);
    assert_eq!(
        c.bus.listen,
        [BusListener {
            address: unix("/var/run/cloudbus/ssh.sock"),
            service: Some("Service0".into()),
        }]
    );
    let s = &c.services[0];
    assert!(s.listen.is_empty());
    assert_eq!(s.targets, Targets::Backends(vec![tcp("localhost", 22)]));
}

/// The benchmark configurations: no `[Cloudbus]` section, DNS names, one controller fanning out
/// over three segments.
#[test]
fn benchmark_files() {
    let c = load("bench-controller.ini", Role::Controller);
    let s = &c.services[0];
    assert_eq!(s.listen, [tcp("0.0.0.0", 8080)]);
    assert_eq!(
        s.targets,
        Targets::Peers(vec![
            tcp("server1.zone-a.example", 8080),
            tcp("server2.zone-b.example", 8080),
            tcp("server3.zone-c.example", 8080),
        ])
    );
    assert_eq!(s.mode, Mode::HalfDuplex);

    let c = load("bench-segment.ini", Role::Segment);
    assert_eq!(c.bus.listen[0].address, tcp("0.0.0.0", 8080));
    assert_eq!(targets(&c), [tcp("localhost", 80)]);
    assert_eq!(c.services[0].mode, Mode::OneToOne);
}

#[test]
fn mixed_layouts_file() {
    for role in BOTH_ROLES {
        let c = load("mixed.ini", role);
        let names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Chat", "Feed"]);
        let chat = &c.services[0];
        assert_eq!(
            chat.targets.addresses(),
            [
                tcp("10.0.0.1", 7100),
                tcp("10.0.0.2", 7100),
                tcp("10.0.0.3", 7100),
                tcp("2001:db8::1", 7100),
                unix("/run/cloudbus/chat.sock"),
            ]
        );
        assert_eq!(chat.mode, Mode::HalfDuplex);
        let feed = &c.services[1];
        assert_eq!(
            feed.targets.addresses(),
            [tcp("feed.internal.example", 9000), tcp("127.0.0.2", 9000)]
        );
        // `mode` continued on the next line.
        assert_eq!(feed.mode, Mode::FullDuplex);
        let binds = [tcp("127.0.0.1", 7000), unix("/run/cloudbus/feed.sock")];
        match role {
            Role::Controller => {
                assert_eq!(chat.listen, [binds[0].clone()]);
                assert_eq!(feed.listen, [binds[1].clone()]);
            }
            Role::Segment => {
                let bus: Vec<_> = c.bus.listen.iter().map(|l| l.address.clone()).collect();
                assert_eq!(bus, binds);
                assert_eq!(c.bus.listen[1].service.as_deref(), Some("Feed"));
            }
        }
    }
}

#[test]
fn crlf_file() {
    let c = load("crlf.ini", Role::Segment);
    assert_eq!(c.services[0].name, "Svc");
    assert_eq!(
        targets(&c),
        [tcp("127.0.0.1", 7101), tcp("127.0.0.1", 7102)]
    );
    assert_eq!(c.services[0].mode, Mode::FullDuplex);
}

/// Every shipped shape is also valid in the other role and renders to TOML that parses again:
/// `busway check` can turn any of them into a TOML file.
#[test]
fn every_file_renders_to_toml_that_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudbus-ini");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        for role in BOTH_ROLES {
            let c = load_ini(&path, role).unwrap_or_else(|e| panic!("{e}"));
            let text = render_toml(&c);
            let again =
                parse_toml(&text, "rendered.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(again.services, c.services, "{}", path.display());
        }
        seen += 1;
    }
    assert_eq!(
        seen, 6,
        "a file was added or removed: list it in the tests above"
    );
}
