//! `render_toml`: the normalised config parses back to the same config (secrets aside).

use busway_config::*;

fn parse(text: &str) -> NodeConfig {
    parse_toml(text, "busway.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// Renders, checks the text parses, and returns the re-parsed config.
fn round_trip(c: &NodeConfig) -> NodeConfig {
    let text = render_toml(c);
    parse_toml(&text, "rendered.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// What a config looks like after rendering: secrets become the literal [`REDACTED`].
fn redact(mut c: NodeConfig) -> NodeConfig {
    let r = || Secret::new(REDACTED);
    if let Some(a) = c.admin.as_mut() {
        a.token = a.token.as_ref().map(|_| r());
    }
    c.bus.secret = c.bus.secret.as_ref().map(|_| r());
    c.bus.token = c.bus.token.as_ref().map(|_| r());
    c.bus.also_accepted = c.bus.also_accepted.iter().map(|_| r()).collect();
    c
}

const FULL: &str = r#"
[node]
name = "edge-a"
namespace = "prod"
labels = { zone = "a", "app.kubernetes.io/name" = "chat" }
shutdown_grace = "1.5s"

[admin]
listen = "tcp://[::1]:9901"
token = "tok-secret-value"

[bus]
listen = ["tcp://127.0.0.1:7100", "unix:///run/busway/bus.sock"]
secret = "bus-secret-value"
connections_per_peer = 3
multilink = true

[dns]
servers = ["127.0.0.1:53", "[::1]:53"]
min_ttl = "90s"

[[service]]
name = "chat"
listen = ["tcp://0.0.0.0:7000"]
peers = ["tcp://[2001:0db8::0001]:7100", "tcp://peer.example:7100"]
mode = "one-to-one"
balance = "least-sessions"
connect_timeout = "250ms"
latch_timeout = "1h"
health_check = { interval = "1s", timeout = "500ms" }
idle_timeout = "2m"

[[service]]
name = "echo"
backends = ["unix:///run/echo.sock"]
"#;

#[test]
fn full_config_round_trips() {
    let c = parse(FULL);
    assert_eq!(round_trip(&c), redact(c));
}

#[test]
fn defaults_round_trip_and_are_written_out() {
    let c = parse("[[service]]\nname = \"x\"\nbackends = [\"tcp://a:1\"]\n");
    let text = render_toml(&c);
    for line in [
        "namespace = \"default\"",
        "shutdown_grace = \"10s\"",
        "connections_per_peer = 1",
        "multilink = false",
        "min_ttl = \"1s\"",
        "mode = \"one-to-one\"",
        "balance = \"round-robin\"",
        "connect_timeout = \"3s\"",
        "latch_timeout = \"0s\"",
        "idle_timeout = \"0s\"",
        "mirror = []",
        "listen = []",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(!text.contains("[admin]"));
    assert!(!text.contains("health_check"));
    assert_eq!(round_trip(&c), c);
}

#[test]
fn addresses_and_durations_are_canonical() {
    let text = render_toml(&parse(FULL));
    assert!(text.contains("\"tcp://[2001:db8::1]:7100\""), "{text}");
    assert!(text.contains("shutdown_grace = \"1500ms\""), "{text}");
    assert!(text.contains("min_ttl = \"90s\""), "{text}");
    assert!(text.contains("latch_timeout = \"1h\""), "{text}");
    assert!(text.contains("idle_timeout = \"2m\""), "{text}");
    assert!(
        text.contains("\"app.kubernetes.io/name\" = \"chat\""),
        "{text}"
    );
}

#[test]
fn secrets_are_redacted() {
    let text = render_toml(&parse(FULL));
    assert!(!text.contains("tok-secret-value"));
    assert!(!text.contains("bus-secret-value"));
    assert_eq!(text.matches("\"<redacted secret>\"").count(), 2, "{text}");
}

#[test]
fn ini_configs_render_to_toml_that_parses() {
    let ini = "[Cloudbus]\n[chat]\nbind=tcp://127.0.0.1:8080\nserver=unix:///run/app.sock\n";
    let controller = parse_ini(ini, "c.ini", Role::Controller).unwrap();
    assert_eq!(round_trip(&controller), controller);

    // A segment's bind is pinned to its service, which TOML cannot say: it is shown as a comment
    // and everything else round-trips.
    let segment = parse_ini(ini, "s.ini", Role::Segment).unwrap();
    let text = render_toml(&segment);
    assert!(
        text.contains("# \"tcp://127.0.0.1:8080\" carries sessions for service \"chat\" only"),
        "{text}"
    );
    let mut expected = segment.clone();
    for l in &mut expected.bus.listen {
        l.service = None;
    }
    assert_eq!(round_trip(&segment), expected);
}

#[test]
fn awkward_strings_stay_valid_toml() {
    let mut c = parse("");
    c.node
        .labels
        .insert("k".into(), "quote\" back\\slash".into());
    // Labels like this cannot come from a file (selectors could not match them), but render must
    // still produce valid TOML for any model value.
    let text = render_toml(&c);
    let value: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        value["node"]["labels"]["k"].as_str(),
        Some("quote\" back\\slash")
    );
}

/// Found by the `ini` fuzz target: a segment's pinned listener is written as a comment, and a
/// Unix path with a control character in it made that comment invalid TOML.
#[test]
fn pinned_listener_comments_stay_valid_toml() {
    let ini = "[s]\nbind=unix:///run/a\u{4}b\u{7f}.sock\nserver=tcp://a:1\n";
    let segment = parse_ini(ini, "s.ini", Role::Segment).unwrap();
    let text = render_toml(&segment);
    assert!(
        text.contains(
            r#"# "unix:///run/a\u0004b\u007F.sock" carries sessions for service "s" only"#
        ),
        "{text}"
    );
    let again = round_trip(&segment);
    assert_eq!(
        again.bus.listen[0].address,
        Address::Unix("/run/a\u{4}b\u{7f}.sock".into())
    );
}
