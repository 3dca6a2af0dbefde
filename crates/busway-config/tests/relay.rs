//! `[[gateway]]` and `[relay]` (CONTRACT section 6).

mod common;

use busway_config::{render_toml, Address, RelayPrefer};
use common::{assert_err, parse};

const DISCOVERY: &str = "[discovery]\netcd = \"http://127.0.0.1:2379\"\n";

#[test]
fn gateways_and_relay_are_read_and_rendered_back() {
    let c = parse(&format!(
        "{DISCOVERY}[[gateway]]\naddress = \"tcp://203.0.113.5:7100\"\npriority = 10\nmatch = {{ namespace = \"edge\" }}\n\
         [[gateway]]\naddress = \"unix:///run/gw.sock\"\n\
         [relay]\nenabled = true\nprefer = \"peer\"\nadvertise = {{ labels = {{ role = \"relay\" }}, name = \"r1\" }}\n"
    ));
    assert_eq!(c.gateways.len(), 2);
    let g = &c.gateways[0];
    assert_eq!(
        g.address,
        Address::Tcp {
            host: "203.0.113.5".into(),
            port: 7100
        }
    );
    assert_eq!(g.priority, 10);
    assert_eq!(g.r#match.get("namespace").map(String::as_str), Some("edge"));
    assert_eq!(c.gateways[1].priority, 0, "priority defaults to 0");
    assert!(c.gateways[1].r#match.is_empty());
    assert!(c.relay.enabled);
    assert_eq!(c.relay.prefer, RelayPrefer::Peer);
    let a = c.relay.advertise.clone().expect("advertise");
    assert_eq!(a.labels.get("role").map(String::as_str), Some("relay"));
    assert_eq!(a.name.as_deref(), Some("r1"));
    let again = parse(&render_toml(&c));
    assert_eq!(again.gateways, c.gateways);
    assert_eq!(again.relay, c.relay);
}

#[test]
fn relay_defaults_to_off_and_own() {
    let c = parse("[relay]\n");
    assert!(!c.relay.enabled);
    assert_eq!(c.relay.prefer, RelayPrefer::Own);
    assert!(c.gateways.is_empty());
    // A relay needs no registry: it can carry sessions on through a service's peers.
    assert!(parse("[relay]\nenabled = true\n").relay.enabled);
    assert!(!render_toml(&parse("")).contains("[relay]"));
}

#[test]
fn bad_gateway_and_relay_keys_name_their_line() {
    assert_err(
        "[[gateway]]\naddress = \"tcp://10.0.0.1:7100\"\n",
        1,
        "gateway",
        "needs [discovery]",
    );
    assert_err(
        &format!("{DISCOVERY}[[gateway]]\npriority = 1\n"),
        3,
        "gateway.address",
        "missing key `address`",
    );
    assert_err(
        &format!("{DISCOVERY}[[gateway]]\naddress = \"tcp://gw.example:7100\"\n"),
        4,
        "gateway.address",
        "tcp://IP:PORT",
    );
    assert_err(
        &format!("{DISCOVERY}[[gateway]]\naddress = \"tcp://0.0.0.0:7100\"\n"),
        4,
        "gateway.address",
        "specified address",
    );
    assert_err(
        &format!("{DISCOVERY}[[gateway]]\naddress = \"tcp://10.0.0.1:7100\"\npriority = -1\n"),
        5,
        "gateway.priority",
        "between 0 and",
    );
    assert_err(
        &format!("{DISCOVERY}[[gateway]]\naddress = \"tcp://10.0.0.1:7100\"\nweight = 1\n"),
        5,
        "gateway.weight",
        "unknown key",
    );
    assert_err(
        "[relay]\nprefer = \"nearest\"\n",
        2,
        "relay.prefer",
        "expected own or peer",
    );
    assert_err(
        "[relay]\nadvertise = { labels = { role = \"relay\" } }\n",
        1,
        "relay.advertise",
        "needs [discovery]",
    );
    assert_err(
        &format!("{DISCOVERY}[relay]\nadvertise = {{ name = \"a b\" }}\n"),
        4,
        "relay.advertise.name",
        "",
    );
    assert_err(
        &format!("{DISCOVERY}[relay]\nadvertise = {{}}\n"),
        4,
        "relay.advertise.labels",
        "needs `labels`",
    );
    assert_err(
        "[relay]\nenabled = 1\n",
        2,
        "relay.enabled",
        "true or false",
    );
}
