use super::*;

fn parse(s: &str) -> Address {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    match s.parse::<Address>() {
        Ok(a) => panic!("{s} parsed as {a:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_form_round_trips_through_display() {
    for s in [
        "tcp://127.0.0.1:7000",
        "tcp://0.0.0.0:0",
        "tcp://[::1]:7100",
        "tcp://[2001:db8::7]:65535",
        "tcp://backend.example.com:9000",
        "tcp://my_host-1:80",
        "unix:///run/busway/bus.sock",
        "srv://_chat._tcp.example.com",
        "grpc://127.0.0.1:50051",
        "grpcs://[::1]:443",
        "grpcs://upstream.example:443",
        "label:app=chat",
        "label:app=chat,zone=a",
        "mdns:_busway._tcp.local",
    ] {
        let a = parse(s);
        assert_eq!(a.to_string(), s, "display of {s}");
        assert_eq!(parse(&a.to_string()), a, "reparse of {s}");
    }
}

#[test]
fn fields_are_split_as_the_model_says() {
    assert_eq!(
        parse("tcp://[::1]:7100"),
        Address::Tcp {
            host: "::1".into(),
            port: 7100
        }
    );
    assert_eq!(
        parse("grpcs://h.example:443"),
        Address::Grpc {
            host: "h.example".into(),
            port: 443,
            tls: true
        }
    );
    assert_eq!(
        parse("unix:///tmp/x.sock"),
        Address::Unix(PathBuf::from("/tmp/x.sock"))
    );
    let Address::Label(m) = parse("label:zone=a,app=chat") else {
        panic!("not a label")
    };
    assert_eq!(m.get("app").map(String::as_str), Some("chat"));
    assert_eq!(m.get("zone").map(String::as_str), Some("a"));
}

#[test]
fn ip_literals_are_stored_canonically() {
    let a = parse("tcp://[2001:0db8:0000::0001]:80");
    assert_eq!(a.to_string(), "tcp://[2001:db8::1]:80");
    // Label order is normalised too (a BTreeMap), so equal selectors compare equal.
    assert_eq!(parse("label:b=2,a=1"), parse("label:a=1,b=2"));
}

#[test]
fn rejects_bad_tcp_addresses() {
    assert!(err("tcp://127.0.0.1").contains("missing port"));
    assert!(err("tcp://127.0.0.1:").contains("missing port number"));
    assert!(err("tcp://127.0.0.1:70000").contains("out of range"));
    assert!(err("tcp://127.0.0.1:+80").contains("invalid port"));
    assert!(err("tcp://:80").contains("missing host"));
    assert!(err("tcp://::1:80").contains("brackets"));
    assert!(err("tcp://[::1]").contains("missing port"));
    assert!(err("tcp://[::1:80").contains("missing ']'"));
    assert!(err("tcp://[nope]:80").contains("invalid IPv6"));
    assert!(err("tcp://10.0.0.256:80").contains("invalid IPv4"));
    assert!(err("tcp://bad host:80").contains("not allowed"));
    assert!(err("tcp://a..b:80").contains("empty label"));
    let long_label = "a".repeat(64);
    assert!(err(&format!("tcp://{long_label}.example:80")).contains("label longer"));
    let long_name = vec!["abcdefghi"; 26].join(".");
    assert!(long_name.len() > 253);
    assert!(err(&format!("tcp://{long_name}:80")).contains("longer than 253"));
}

#[test]
fn rejects_bad_unix_paths() {
    assert!(err("unix://run/x.sock").contains("absolute"));
    assert!(err("unix://").contains("absolute"));
    assert!(err("unix:///").contains("directory"));
    let long = format!("unix:///{}", "x".repeat(120));
    assert!(err(&long).contains("the limit is 107"));
}

#[test]
fn rejects_bad_srv_and_label() {
    assert!(err("srv://chat._tcp.example.com").contains("first label"));
    assert!(err("srv://_chat.tcp.example.com").contains("second label"));
    assert!(err("srv://_chat._tcp").contains("domain is missing"));
    assert!(err("label:").contains("at least one"));
    assert!(err("label:app").contains("not KEY=VALUE"));
    assert!(err("label:app=").contains("non-empty"));
    assert!(err("label:a=1,a=2").contains("twice"));
}

#[test]
fn mdns_targets_are_service_types_on_local() {
    assert_eq!(
        parse("mdns:_busway._udp.local"),
        Address::Mdns("_busway._udp.local".into())
    );
    assert!(err("mdns:").contains("empty name"));
    for bad in [
        "mdns:_busway._tcp.example.com",
        "mdns:_busway._sctp.local",
        "mdns:_busway._tcp.local.",
        "mdns:busway.local",
    ] {
        assert!(err(bad).contains("invalid mDNS service type"), "{bad}");
    }
    for bad in [
        "mdns:busway._tcp.local",
        "mdns:_._tcp.local",
        "mdns:a._busway._tcp.local",
    ] {
        assert!(err(bad).contains("starts with '_'"), "{bad}");
    }
    assert!(parse("mdns:_fifteen-chars-a._tcp.local").to_string().len() > 20);
    assert!(err("mdns:_sixteen-chars-ab._tcp.local").contains("at most 15"));
}

#[test]
fn rejects_unknown_or_missing_schemes() {
    assert!(err("http://x:1").contains("unknown scheme \"http\""));
    assert!(err("127.0.0.1:80").contains("missing scheme"));
    assert!(err("").contains("empty address"));
}
