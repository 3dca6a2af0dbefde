//! `[cluster]` (CONTRACT section 7): defaults, every key read and rendered back, and errors that
//! name their line and key.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use busway_config::{parse_toml, ClusterBackend, REDACTED};
use common::{assert_err, parse};

const MINIMAL: &str = "[cluster]\ninterface = \"eth0\"\nservice_ip = \"198.18.0.100/24\"\nsecret = \"0123456789abcdef\"\n";

#[test]
fn defaults_are_the_contracts() {
    let c = parse(MINIMAL).cluster.expect("[cluster]");
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.service_ip, Ipv4Addr::new(198, 18, 0, 100));
    assert_eq!(c.prefix_len, 24);
    assert_eq!(
        c.group,
        SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 1), 7946)
    );
    assert_eq!(c.priority, 100);
    assert_eq!(c.advert_interval, Duration::from_millis(200));
    assert_eq!(c.dead_after, 3);
    assert_eq!(c.secret.expose(), "0123456789abcdef");
    assert!(!c.mdns);
    assert!(!c.lan_balance);
    assert_eq!(c.backend, ClusterBackend::Multicast);
}

#[test]
fn no_section_no_cluster() {
    assert!(parse("[node]\nname = \"a\"\n").cluster.is_none());
}

#[test]
fn every_key_is_read_and_rendered_back() {
    let text = "[node]\nname = \"m1\"\n[cluster]\ninterface = \"veth-m1\"\nservice_ip = \"198.19.5.5\"\ngroup = \"239.1.2.3:9000\"\npriority = 250\nadvert_interval = \"50ms\"\ndead_after = 5\nsecret = \"env:CLUSTER_TEST_SECRET\"\nmdns = false\nlan_balance = false\nbackend = \"multicast\"\n";
    std::env::set_var("CLUSTER_TEST_SECRET", "a-secret-of-enough-bytes");
    let cfg = parse(text);
    let c = cfg.cluster.clone().unwrap();
    assert_eq!(c.prefix_len, 32, "no prefix is a host address");
    assert_eq!(c.group.port(), 9000);
    assert_eq!(c.priority, 250);
    assert_eq!(c.advert_interval, Duration::from_millis(50));
    assert_eq!(c.dead_after, 5);
    assert_eq!(c.secret.expose(), "a-secret-of-enough-bytes");
    let rendered = busway_config::render_toml(&cfg);
    assert!(
        rendered.contains("service_ip = \"198.19.5.5/32\""),
        "{rendered}"
    );
    assert!(!rendered.contains("a-secret-of-enough-bytes"), "{rendered}");
    assert!(rendered.contains(REDACTED), "{rendered}");
    let back = parse(&rendered).cluster.unwrap();
    assert_eq!(back.secret.expose(), REDACTED);
    assert_eq!(
        busway_config::ClusterConfig {
            secret: c.secret.clone(),
            ..back
        },
        c
    );
}

#[test]
fn missing_keys_name_the_section_line() {
    assert_err(
        "[node]\nname = \"a\"\n[cluster]\nservice_ip = \"198.18.0.100/24\"\nsecret = \"0123456789abcdef\"\n",
        3,
        "cluster.interface",
        "missing key `interface`",
    );
    assert_err(
        "[cluster]\ninterface = \"eth0\"\nsecret = \"0123456789abcdef\"\n",
        1,
        "cluster.service_ip",
        "missing key `service_ip`",
    );
    assert_err(
        "[cluster]\ninterface = \"eth0\"\nservice_ip = \"198.18.0.100/24\"\n",
        1,
        "cluster.secret",
        "missing key `secret`",
    );
}

/// `MINIMAL` with one more line, which becomes line 5.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

#[test]
fn bad_values_name_their_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "group = \"198.18.0.1:7946\"",
            "cluster.group",
            "not a multicast",
        ),
        ("group = \"239.255.77.1\"", "cluster.group", "invalid group"),
        ("priority = -1", "cluster.priority", "between 0 and"),
        ("priority = 4294967296", "cluster.priority", "between 0 and"),
        (
            "advert_interval = \"5ms\"",
            "cluster.advert_interval",
            "between 10ms and 10s",
        ),
        (
            "advert_interval = \"11s\"",
            "cluster.advert_interval",
            "between 10ms and 10s",
        ),
        (
            "advert_interval = \"fast\"",
            "cluster.advert_interval",
            "invalid duration",
        ),
        ("dead_after = 0", "cluster.dead_after", "between 1 and 100"),
        ("mdns = \"yes\"", "cluster.mdns", "true or false"),
        (
            "backend = \"zookeeper\"",
            "cluster.backend",
            "expected multicast or etcd",
        ),
        ("vrid = 51", "cluster.vrid", "unknown key `vrid`"),
    ];
    for (line, key, needle) in cases {
        assert_err(&with(line), 5, key, needle);
    }
}

#[test]
fn bad_addresses_and_interfaces() {
    let base = "[cluster]\nsecret = \"0123456789abcdef\"\n";
    for (text, key, needle) in [
        (
            "interface = \"eth0\"\nservice_ip = \"198.18.0.100/33\"",
            "cluster.service_ip",
            "prefix length",
        ),
        (
            "interface = \"eth0\"\nservice_ip = \"fd00::1/64\"",
            "cluster.service_ip",
            "IPv4",
        ),
        (
            "interface = \"eth0\"\nservice_ip = \"127.0.0.2/8\"",
            "cluster.service_ip",
            "loopback",
        ),
        (
            "interface = \"a-name-far-too-long\"\nservice_ip = \"198.18.0.100/24\"",
            "cluster.interface",
            "1 to 15 bytes",
        ),
        (
            "interface = \"eth0:1\"\nservice_ip = \"198.18.0.100/24\"",
            "cluster.interface",
            "no '/', ':'",
        ),
    ] {
        let line = if key == "cluster.interface" { 3 } else { 4 };
        assert_err(&format!("{base}{text}\n"), line, key, needle);
    }
}

#[test]
fn secrets_are_checked_and_never_shown() {
    assert_err(
        &MINIMAL.replace("0123456789abcdef", "short"),
        4,
        "cluster.secret",
        "at least 16 bytes",
    );
    assert_err(
        &MINIMAL.replace("0123456789abcdef", "env:BUSWAY_NO_SUCH_VARIABLE_HERE"),
        4,
        "cluster.secret",
        "BUSWAY_NO_SUCH_VARIABLE_HERE is not set",
    );
    let e = parse_toml(&MINIMAL.replace("0123456789abcdef", "tooshortsecret"), "f").unwrap_err();
    assert!(!e.to_string().contains("tooshortsecret"), "{e}");
}

#[test]
fn mdns_is_read_and_needs_a_tcp_bus_listener() {
    let bus = |listen: &str| format!("[bus]\nlisten = [\"{listen}\"]\n{}", with("mdns = true"));
    let cfg = parse(&bus("tcp://198.18.0.11:7100"));
    assert!(cfg.cluster.as_ref().unwrap().mdns);
    let rendered = busway_config::render_toml(&cfg);
    assert!(rendered.contains("mdns = true"), "{rendered}");
    assert!(parse(&rendered).cluster.unwrap().mdns);
    // A Unix bus listener has no port for the SRV record; no bus listener at all neither.
    assert_err(
        &bus("unix:///run/busway/bus.sock"),
        7,
        "cluster.mdns",
        "needs a tcp:// address in bus.listen",
    );
    assert_err(
        &with("mdns = true"),
        5,
        "cluster.mdns",
        "needs a tcp:// address in bus.listen",
    );
}

#[test]
fn features_written_out_as_off_are_fine() {
    // Written out as off, they are fine.
    assert!(parse(&with("mdns = false\nlan_balance = false"))
        .cluster
        .is_some());
}

#[test]
fn lan_balance_is_read() {
    let c = parse(&with("lan_balance = true"))
        .cluster
        .expect("a cluster");
    assert!(c.lan_balance);
    assert!(
        !parse(&with("lan_balance = false"))
            .cluster
            .unwrap()
            .lan_balance
    );
}

#[test]
fn the_etcd_backend_needs_discovery() {
    assert_err(
        &with("backend = \"etcd\""),
        5,
        "cluster.backend",
        "needs a [discovery] section",
    );
    let text = format!(
        "{}[discovery]\netcd = \"http://198.18.0.1:2379\"\nlease_ttl = \"1s\"\n",
        with("backend = \"etcd\"")
    );
    let cfg = parse(&text);
    assert_eq!(cfg.cluster.as_ref().unwrap().backend, ClusterBackend::Etcd);
    let rendered = busway_config::render_toml(&cfg);
    assert!(rendered.contains("backend = \"etcd\""), "{rendered}");
    assert_eq!(
        parse(&rendered).cluster.unwrap().backend,
        ClusterBackend::Etcd
    );
    assert_err(
        &format!(
            "{}[discovery]\netcd = \"http://198.18.0.1:2379\"\n",
            with("backend = \"etcd\"\nlan_balance = true")
        ),
        6,
        "cluster.lan_balance",
        "multicast membership",
    );
    assert_err(
        &with("backend = \"raft\""),
        5,
        "cluster.backend",
        "expected multicast or etcd",
    );
}

#[test]
fn a_members_name_fits_in_an_advert() {
    let long = "n".repeat(65);
    assert_err(
        &format!("[node]\nname = \"{long}\"\n{MINIMAL}"),
        3,
        "cluster",
        "at most 64 bytes",
    );
    assert!(
        parse(&format!("[node]\nname = \"{}\"\n{MINIMAL}", "n".repeat(64)))
            .cluster
            .is_some()
    );
}
