//! `mdns:` targets (CONTRACT sections 2 and 7): accepted as `peers` on any node, cluster or
//! not; refused as `backends`; malformed service types named with their line and key.

mod common;

use busway_config::{parse_ini, Address, Role, Targets};
use common::{assert_err, assert_ini_err, parse};

fn ingress(peers: &str) -> String {
    format!("[[service]]\nname = \"web\"\nlisten = [\"tcp://127.0.0.1:7000\"]\npeers = [\n  \"tcp://198.18.0.11:7100\",\n  \"{peers}\",\n]\n")
}

#[test]
fn mdns_peers_are_accepted_without_a_cluster() {
    let cfg = parse(&ingress("mdns:_busway._tcp.local"));
    assert!(cfg.cluster.is_none());
    let Targets::Peers(p) = &cfg.services[0].targets else {
        panic!("not peers")
    };
    assert_eq!(p[1], Address::Mdns("_busway._tcp.local".into()));
    let rendered = busway_config::render_toml(&cfg);
    assert!(
        rendered.contains("\"mdns:_busway._tcp.local\""),
        "{rendered}"
    );
    assert_eq!(parse(&rendered).services, cfg.services);
}

#[test]
fn malformed_service_types_name_their_line() {
    for (bad, why) in [
        ("mdns:", "empty name"),
        ("mdns:_busway._tcp.example.com", "must end in ._tcp.local"),
        ("mdns:_busway._tcp", "must end in ._tcp.local"),
        ("mdns:busway._tcp.local", "starts with '_'"),
        ("mdns:_busway._tcp.local.", "empty label"),
    ] {
        assert_err(
            &ingress(bad),
            6,
            "service.peers",
            &format!("invalid address \"{bad}\""),
        );
        assert_err(&ingress(bad), 6, "service.peers", why);
    }
}

#[test]
fn mdns_backends_are_refused() {
    assert_err(
        "[[service]]\nname = \"web\"\nlisten = [\"tcp://127.0.0.1:7000\"]\nbackends = [\"mdns:_busway._tcp.local\"]\n",
        4,
        "service.backends",
        "list them in `peers`, not `backends`",
    );
    assert_ini_err(
        "[web]\nbind=tcp://127.0.0.1:1\nserver=mdns:_busway._tcp.local\n",
        Role::Segment,
        3,
        "web.server",
        "list them in `peers`, not `backends`",
    );
}

#[test]
fn a_controller_finds_its_segments_by_mdns() {
    let cfg = parse_ini(
        "[web]\nbind=tcp://127.0.0.1:1\nserver=mdns:_busway._tcp.local\n",
        "controller.ini",
        Role::Controller,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.services[0].targets,
        Targets::Peers(vec![Address::Mdns("_busway._tcp.local".into())])
    );
}
