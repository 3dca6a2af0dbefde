//! `[discovery]` and `label:` targets (CONTRACT section 6).

mod common;

use std::time::Duration;

use busway_config::{parse_toml, Address, Targets};
use common::{assert_err, parse};

const INGRESS: &str = "[[service]]\nname = \"chat\"\nlisten = [\"tcp://127.0.0.1:0\"]\npeers = [\"label:app=chat,tier=web\"]\n";

#[test]
fn discovery_defaults_and_label_peers() {
    let c = parse(&format!(
        "[discovery]\netcd = \"http://127.0.0.1:2379\"\n{INGRESS}"
    ));
    let d = c.discovery.expect("[discovery]");
    assert_eq!(d.etcd, vec!["http://127.0.0.1:2379".to_string()]);
    assert_eq!(d.prefix, "/busway");
    assert_eq!(d.lease_ttl, Duration::from_secs(10));
    let Targets::Peers(p) = &c.services[0].targets else {
        panic!("peers")
    };
    let Address::Label(sel) = &p[0] else {
        panic!("a label selector")
    };
    assert_eq!(sel.get("app").map(String::as_str), Some("chat"));
    assert_eq!(sel.get("tier").map(String::as_str), Some("web"));
}

#[test]
fn every_key_is_read_and_rendered_back() {
    let text = "[discovery]\netcd = [\"http://10.0.0.1:2379\", \"http://e2:2379\"]\nprefix = \"/bus/\"\nlease_ttl = \"30s\"\n";
    let c = parse(text);
    let d = c.discovery.clone().unwrap();
    assert_eq!(d.etcd.len(), 2);
    assert_eq!(d.prefix, "/bus");
    assert_eq!(d.lease_ttl, Duration::from_secs(30));
    let rendered = busway_config::render_toml(&c);
    assert!(rendered.contains("[discovery]"), "{rendered}");
    assert_eq!(parse(&rendered).discovery, c.discovery);
}

#[test]
fn bad_discovery_keys_name_their_line() {
    assert_err(
        "[discovery]\nprefix = \"/b\"\n",
        1,
        "discovery.etcd",
        "missing key `etcd`",
    );
    assert_err(
        "[discovery]\netcd = []\n",
        2,
        "discovery.etcd",
        "at least one endpoint",
    );
    assert_err(
        "[discovery]\netcd = [\"http://a:2379\", \"a:2379\"]\n",
        2,
        "discovery.etcd",
        "invalid etcd endpoint \"a:2379\"",
    );
    assert_err(
        "[discovery]\netcd = \"http://a:2379\"\nprefix = \"busway\"\n",
        3,
        "discovery.prefix",
        "invalid prefix",
    );
    assert_err(
        "[discovery]\netcd = \"http://a:2379\"\n\nlease_ttl = \"100ms\"\n",
        4,
        "discovery.lease_ttl",
        "between 1s and 1h",
    );
    assert_err(
        "[discovery]\netcd = \"http://a:2379\"\nwatch = true\n",
        3,
        "discovery.watch",
        "unknown key",
    );
}

#[test]
fn label_targets_need_discovery() {
    assert_err(
        INGRESS,
        4,
        "service.peers",
        "label: targets need [discovery]",
    );
    assert!(parse_toml(INGRESS, "x.toml").is_err());
}
