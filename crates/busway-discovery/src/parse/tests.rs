use serde_json::{json, Value};

use super::*;

const KEY: &str = "/busway/nodes/edge/n1";

fn good() -> Value {
    json!({
        "name": "n1",
        "namespace": "edge",
        "version": "0.1.0",
        "labels": {"app": "chat"},
        "annotations": {},
        "host": {"hostname": "h1", "pid": 4242},
        "bus": ["tcp://127.0.0.1:7100", "unix:///run/busway/bus.sock", "tcp://[::1]:7100"],
        "services": ["chat"],
        "gateways": [{"address": "tcp://203.0.113.5:7100", "priority": 10, "match": {"namespace": "edge"}}],
        "relay": true,
        "advertise_relay": {"labels": {"role": "relay"}}
    })
}

fn parse(v: &Value) -> Result<NodeRecord, Rejected> {
    parse_record("/busway", KEY, v.to_string().as_bytes())
}

fn with(mut v: Value, field: &str, new: Value) -> Value {
    v[field] = new;
    v
}

fn without(mut v: Value, field: &str) -> Value {
    v.as_object_mut().unwrap().remove(field);
    v
}

#[test]
fn a_full_record_parses_and_round_trips() {
    let r = parse(&good()).unwrap();
    assert_eq!(r.name, "n1");
    assert_eq!(r.host.pid, 4242);
    assert_eq!(r.gateways[0].r#match["namespace"], "edge");
    assert_eq!(r.advertise_relay.as_ref().unwrap().labels["role"], "relay");
    assert_eq!(r.advertise_relay.as_ref().unwrap().name, None);
    assert_eq!(parse_record("/busway", KEY, &r.to_json()), Ok(r));
}

#[test]
fn a_trailing_slash_on_the_prefix_names_the_same_key() {
    assert!(parse_record("/busway/", KEY, good().to_string().as_bytes()).is_ok());
}

#[test]
fn null_advertise_relay_and_a_relay_name_are_accepted() {
    assert_eq!(
        parse(&with(good(), "advertise_relay", Value::Null))
            .unwrap()
            .advertise_relay,
        None
    );
    let named = json!({"labels": {}, "name": "r1"});
    let r = parse(&with(good(), "advertise_relay", named)).unwrap();
    assert_eq!(r.advertise_relay.unwrap().name.as_deref(), Some("r1"));
}

#[test]
fn every_field_must_be_present() {
    let fields = [
        "name",
        "namespace",
        "version",
        "labels",
        "annotations",
        "host",
        "bus",
        "services",
        "gateways",
        "relay",
        "advertise_relay",
    ];
    for f in fields {
        match parse(&without(good(), f)) {
            Err(Rejected::Parse(m)) => assert!(m.contains(f), "{f}: {m}"),
            other => panic!("{f} missing: {other:?}"),
        }
    }
    let mut v = good();
    v["host"].as_object_mut().unwrap().remove("pid");
    assert!(matches!(parse(&v), Err(Rejected::Parse(_))));
    let mut v = good();
    v["gateways"][0].as_object_mut().unwrap().remove("match");
    assert!(matches!(parse(&v), Err(Rejected::Parse(_))));
}

#[test]
fn every_field_must_have_its_type() {
    let wrong = [
        ("name", json!(1)),
        ("labels", json!({"app": 1})),
        ("labels", json!(["app"])),
        ("host", json!({"hostname": "h", "pid": -1})),
        ("host", json!({"hostname": "h", "pid": 4294967296u64})),
        ("host", json!({"hostname": "h", "pid": "12"})),
        ("bus", json!("tcp://127.0.0.1:1")),
        ("services", json!([1])),
        (
            "gateways",
            json!([{"address": "tcp://1.2.3.4:5", "priority": "1", "match": {}}]),
        ),
        ("relay", json!("true")),
        ("advertise_relay", json!({"labels": {}, "name": 3})),
        ("advertise_relay", json!(true)),
    ];
    for (f, v) in wrong {
        assert!(
            matches!(parse(&with(good(), f, v.clone())), Err(Rejected::Parse(_))),
            "{f} = {v}"
        );
    }
}

#[test]
fn junk_and_oversized_values_are_parse_errors() {
    for junk in [
        &b""[..],
        b"{",
        b"null",
        b"[]",
        b"\xff\xfe",
        b"{\"name\":\"n1\"} trailing",
    ] {
        assert!(
            matches!(parse_record("/busway", KEY, junk), Err(Rejected::Parse(_))),
            "{junk:?}"
        );
    }
    // Padded past the cap with whitespace, which is valid JSON: refused for its size alone.
    let mut big = good().to_string().into_bytes();
    big.resize(MAX_RECORD_BYTES + 1, b' ');
    match parse_record("/busway", KEY, &big) {
        Err(Rejected::Parse(m)) => assert!(m.contains("64 KiB"), "{m}"),
        other => panic!("{other:?}"),
    }
    big.truncate(MAX_RECORD_BYTES);
    assert!(parse_record("/busway", KEY, &big).is_ok());
}

#[test]
fn a_field_given_twice_is_refused_so_readers_cannot_disagree_on_it() {
    let text = good().to_string().replacen("{", r#"{"name":"victim","#, 1);
    assert!(matches!(
        parse_record("/busway", KEY, text.as_bytes()),
        Err(Rejected::Parse(_))
    ));
}

#[test]
fn unknown_fields_are_ignored_for_newer_writers() {
    assert!(parse(&with(good(), "zone", json!("eu-1"))).is_ok());
}

#[test]
fn the_key_must_be_the_records_own() {
    // Another node's name under this key: impersonation.
    assert_eq!(
        parse(&with(good(), "name", json!("victim"))),
        Err(Rejected::Key)
    );
    assert_eq!(
        parse(&with(good(), "namespace", json!("default"))),
        Err(Rejected::Key)
    );
    let v = good().to_string();
    for key in [
        "/busway/nodes/edge/n1/",
        "/busway/nodes/edge/n2",
        "/other/nodes/edge/n1",
        "/busway/nodes/edge",
    ] {
        assert_eq!(
            parse_record("/busway", key, v.as_bytes()),
            Err(Rejected::Key),
            "{key}"
        );
    }
}

#[test]
fn names_that_would_make_keys_ambiguous_are_refused() {
    // namespace "edge/n1" with an empty name, or "edge" with "x/n1": the same key shapes as
    // other nodes', so only names by the config's rules are accepted.
    let mut v = with(good(), "namespace", json!("a/b"));
    v["name"] = json!("c");
    assert_eq!(
        parse_record("/busway", "/busway/nodes/a/b/c", v.to_string().as_bytes()),
        Err(Rejected::Key)
    );
    let mut v = with(good(), "namespace", json!("edge"));
    v["name"] = json!("");
    assert_eq!(
        parse_record("/busway", "/busway/nodes/edge/", v.to_string().as_bytes()),
        Err(Rejected::Key)
    );
}

#[test]
fn only_tcp_and_unix_addresses_are_accepted() {
    for bad in [
        "http://127.0.0.1:7100",
        "grpc://127.0.0.1:7100",
        "srv://_bus._tcp.example.com",
        "label:app=chat",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:99999",
        "unix://relative/path",
        "127.0.0.1:7100",
        "",
    ] {
        assert_eq!(
            parse(&with(good(), "bus", json!(["tcp://127.0.0.1:1", bad]))),
            Err(Rejected::Address(bad.to_string())),
            "bus {bad}"
        );
        let gw = json!([{"address": bad, "priority": 1, "match": {}}]);
        assert_eq!(
            parse(&with(good(), "gateways", gw)),
            Err(Rejected::Address(bad.to_string())),
            "gateway {bad}"
        );
    }
}

#[test]
fn long_addresses_and_messages_are_cut_before_they_are_kept() {
    let long = format!("http://{}", "a".repeat(10_000));
    match parse(&with(good(), "bus", json!([long]))) {
        Err(Rejected::Address(a)) => assert!(a.chars().count() <= 129, "{}", a.len()),
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(10_000);
    match parse(&with(good(), "relay", json!(long))) {
        Err(Rejected::Parse(m)) => assert!(m.chars().count() <= 129, "{}", m.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn labels_name_the_metric_reasons() {
    let got: Vec<&str> = [
        Rejected::Parse(String::new()),
        Rejected::Key,
        Rejected::Address(String::new()),
    ]
    .iter()
    .map(Rejected::label)
    .collect();
    assert_eq!(got, Rejected::REASONS);
}
