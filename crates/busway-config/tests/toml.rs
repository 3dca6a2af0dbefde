//! The TOML file through the public API: defaults, every error with its line and key, secrets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use busway_config::*;

mod common;
use common::*;

const ONE_BACKEND: &str = "[[service]]\nname = \"echo\"\nbackends = [\"tcp://127.0.0.1:9000\"]\n";

#[test]
fn empty_file_gives_every_node_default() {
    let c = parse("");
    assert_eq!(c.node.name, hostname());
    assert_eq!(c.node.namespace, "default");
    assert!(c.node.labels.is_empty());
    assert_eq!(c.node.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.admin, None);
    assert!(c.bus.listen.is_empty());
    assert!(c.bus.secret.is_none());
    assert_eq!(c.bus.connections_per_peer, 1);
    assert!(!c.bus.multilink);
    assert!(c.dns.servers.is_empty());
    assert_eq!(c.dns.min_ttl, Duration::from_secs(1));
    assert!(c.services.is_empty());
}

#[test]
fn empty_sections_give_the_same_defaults() {
    let c = parse("[node]\n[bus]\n[dns]\n");
    assert_eq!(c, parse(""));
}

#[test]
fn hostname_is_never_empty() {
    let h = hostname();
    assert!(!h.is_empty());
    assert_eq!(h, h.trim());
}

#[test]
fn service_defaults() {
    let c = parse(ONE_BACKEND);
    let s = &c.services[0];
    assert_eq!(s.name, "echo");
    assert!(s.listen.is_empty());
    assert_eq!(s.targets, Targets::Backends(vec![tcp("127.0.0.1", 9000)]));
    assert_eq!(s.mode, Mode::OneToOne);
    assert_eq!(s.balance, Balance::RoundRobin);
    assert_eq!(s.connect_timeout, Duration::from_secs(3));
    assert_eq!(s.latch_timeout, Duration::ZERO);
    assert_eq!(s.health_check, None);
    assert_eq!(s.idle_timeout, Duration::ZERO);
    assert!(s.mirror.is_empty());
}

#[test]
fn a_full_file_is_read_exactly() {
    let c = parse(
        r#"
[node]
name = "edge-a"
namespace = "prod"
labels = { zone = "a", app = "chat" }
shutdown_grace = "2s"

[admin]
listen = "tcp://127.0.0.1:9901"
token = "tok"

[bus]
listen = ["tcp://127.0.0.1:7100", "unix:///run/busway/bus.sock"]
secret = "sec-0123456789abcdef"
connections_per_peer = 4
multilink = true

[dns]
servers = ["127.0.0.1:53", "[::1]:5353"]
min_ttl = "250ms"

[[service]]
name = "chat"
listen = ["tcp://0.0.0.0:7000", "tcp://[::]:7001"]
peers = ["tcp://198.18.0.2:7100", "tcp://peer.example:7100"]
mode = "one-to-one"
balance = "least-sessions"
connect_timeout = "1.5s"
latch_timeout = "5s"
health_check = { interval = "1s", timeout = "500ms" }
idle_timeout = "1m"
mirror = []

[[service]]
name = "api"
backends = ["unix:///run/api.sock"]
balance = "random"
"#,
    );
    assert_eq!(c.node.name, "edge-a");
    assert_eq!(c.node.namespace, "prod");
    assert_eq!(c.node.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(c.node.labels.len(), 2);
    assert_eq!(c.node.shutdown_grace, Duration::from_secs(2));
    let admin = c.admin.as_ref().unwrap();
    assert_eq!(admin.listen, tcp("127.0.0.1", 9901));
    assert_eq!(admin.token.as_ref().map(Secret::expose), Some("tok"));
    assert_eq!(
        c.bus.listen,
        vec![
            BusListener {
                address: tcp("127.0.0.1", 7100),
                service: None
            },
            BusListener {
                address: Address::Unix(PathBuf::from("/run/busway/bus.sock")),
                service: None
            },
        ]
    );
    assert_eq!(
        c.bus.secret.as_ref().map(Secret::expose),
        Some("sec-0123456789abcdef")
    );
    assert_eq!(c.bus.connections_per_peer, 4);
    assert!(c.bus.multilink);
    assert_eq!(
        c.dns.servers,
        vec![
            "127.0.0.1:53".parse().unwrap(),
            "[::1]:5353".parse().unwrap()
        ]
    );
    assert_eq!(c.dns.min_ttl, Duration::from_millis(250));
    let chat = &c.services[0];
    assert_eq!(chat.listen, vec![tcp("0.0.0.0", 7000), tcp("::", 7001)]);
    assert_eq!(
        chat.targets,
        Targets::Peers(vec![tcp("198.18.0.2", 7100), tcp("peer.example", 7100)])
    );
    assert_eq!(chat.mode, Mode::OneToOne);
    assert_eq!(chat.balance, Balance::LeastSessions);
    assert_eq!(chat.connect_timeout, Duration::from_millis(1500));
    assert_eq!(chat.latch_timeout, Duration::from_secs(5));
    assert_eq!(
        chat.health_check,
        Some(HealthCheck {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500)
        })
    );
    assert_eq!(chat.idle_timeout, Duration::from_secs(60));
    let api = &c.services[1];
    assert_eq!(api.balance, Balance::Random);
    assert_eq!(
        api.targets,
        Targets::Backends(vec![Address::Unix(PathBuf::from("/run/api.sock"))])
    );
}

#[test]
fn port_zero_listeners_are_allowed() {
    let c =
        parse("[bus]\nlisten = [\"tcp://127.0.0.1:0\"]\n[admin]\nlisten = \"tcp://127.0.0.1:0\"\n");
    assert_eq!(c.bus.listen[0].address, tcp("127.0.0.1", 0));
}

#[test]
fn syntax_errors_name_line_and_key() {
    assert_err(
        "[node]\nname = \"a\"\nname = \"b\"\n",
        3,
        "node.name",
        "duplicate key",
    );
    assert_err("[node]\n\nname = edge\n", 3, "node.name", "quoted");
    assert_err(
        "[[service]]\nname = \"x\"\nbackends = [\n  \"tcp://a:1\",,\n]\n",
        4,
        "service.backends",
        "comma",
    );
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    assert_err(
        "[nod]\n",
        1,
        "nod",
        "unknown key `nod`, expected one of `node`",
    );
    assert_err(
        "[node]\nnmae = \"x\"\n",
        2,
        "node.nmae",
        "unknown key `nmae`",
    );
    assert_err(
        "[admin]\nlisten = \"tcp://127.0.0.1:1\"\nx = 1\n",
        3,
        "admin.x",
        "unknown key",
    );
    assert_err(
        "[bus]\n\nsecrets = \"x\"\n",
        3,
        "bus.secrets",
        "expected one of `listen`, `secret`",
    );
    assert_err(
        "[dns]\nserver = []\n",
        2,
        "dns.server",
        "unknown key `server`",
    );
    assert_err(
        &format!("{ONE_BACKEND}timeout = \"1s\"\n"),
        4,
        "service.timeout",
        "`connect_timeout`",
    );
    assert_err(
        &format!(
            "{ONE_BACKEND}health_check = {{ interval = \"1s\", timeout = \"1s\", rise = 2 }}\n"
        ),
        4,
        "service.health_check.rise",
        "unknown key `rise`",
    );
}

#[test]
fn the_first_bad_section_in_file_order_is_reported() {
    assert_err("[nodes]\n[cluster]\n", 1, "nodes", "unknown key `nodes`");
    assert_err(
        "[clusters]\n[nodes]\n",
        1,
        "clusters",
        "unknown key `clusters`",
    );
}

#[test]
fn wrong_types_are_reported() {
    assert_err(
        "[node]\nname = 1\n",
        2,
        "node.name",
        "expected a string, found an integer",
    );
    assert_err("node = 1\n", 1, "node", "expected a table");
    assert_err(
        "[bus]\nlisten = \"tcp://a:1\"\n",
        2,
        "bus.listen",
        "expected an array",
    );
    assert_err(
        "[bus]\nlisten = [1]\n",
        2,
        "bus.listen",
        "expected a string",
    );
    assert_err(
        "[bus]\nconnections_per_peer = \"2\"\n",
        2,
        "bus.connections_per_peer",
        "integer",
    );
    assert_err(
        "[bus]\nmultilink = \"yes\"\n",
        2,
        "bus.multilink",
        "true or false",
    );
    assert_err(
        "[node]\nshutdown_grace = 10\n",
        2,
        "node.shutdown_grace",
        "duration string",
    );
    assert_err("[node]\nlabels = { a = 1 }\n", 2, "node.labels.a", "string");
    assert_err("[service]\nname = \"x\"\n", 1, "service", "[[service]]");
}

#[test]
fn bad_values_in_node_admin_bus_dns() {
    assert_err("[node]\nname = \"a b\"\n", 2, "node.name", "not allowed");
    assert_err("[node]\nnamespace = \"\"\n", 2, "node.namespace", "empty");
    assert_err(
        "[node]\nlabels = { \"a b\" = \"c\" }\n",
        2,
        "node.labels.a b",
        "invalid label",
    );
    assert_err(
        "[node]\nshutdown_grace = \"3x\"\n",
        2,
        "node.shutdown_grace",
        "invalid duration \"3x\": unknown unit \"x\"",
    );
    assert_err(
        "[admin]\ntoken = \"t\"\n",
        1,
        "admin.listen",
        "missing key `listen`",
    );
    assert_err(
        "[admin]\nlisten = \"unix:///tmp/a.sock\"\n",
        2,
        "admin.listen",
        "must be a tcp://",
    );
    assert_err(
        "[admin]\nlisten = \"127.0.0.1:9901\"\n",
        2,
        "admin.listen",
        "missing scheme",
    );
    assert_err(
        "[bus]\nlisten = [\n  \"tcp://127.0.0.1:1\",\n  \"mdns:_busway._tcp.local\",\n]\n",
        4,
        "bus.listen",
        "bus listener must be a tcp:// or unix://",
    );
    assert_err(
        "[bus]\nconnections_per_peer = 0\n",
        2,
        "bus.connections_per_peer",
        "between 1 and 64",
    );
    assert_err(
        "[bus]\nconnections_per_peer = 65\n",
        2,
        "bus.connections_per_peer",
        "got 65",
    );
    assert_err(
        "[dns]\nservers = [\"localhost:53\"]\n",
        2,
        "dns.servers",
        "invalid name server",
    );
    assert_err(
        "[dns]\nservers = [\"127.0.0.1\"]\n",
        2,
        "dns.servers",
        "IP:PORT",
    );
    assert_err("[dns]\nmin_ttl = \"-1s\"\n", 2, "dns.min_ttl", "negative");
}

#[test]
fn service_rules() {
    assert_err(
        "[[service]]\nbackends = [\"tcp://a:1\"]\n",
        1,
        "service.name",
        "missing key `name`",
    );
    assert_err(
        "[[service]]\nname = \"a/b\"\nbackends = [\"tcp://a:1\"]\n",
        2,
        "service.name",
        "not allowed",
    );
    assert_err(
        "[[service]]\nname = \"\"\nbackends = [\"tcp://a:1\"]\n",
        2,
        "service.name",
        "empty",
    );
    assert_err(
        &format!("{ONE_BACKEND}\n[[service]]\nname = \"echo\"\nbackends = [\"tcp://b:1\"]\n"),
        6,
        "service.name",
        "duplicate service name \"echo\" (first on line 2)",
    );
    assert_err(
        "[[service]]\nname = \"x\"\nlisten = [\"tcp://a:1\"]\npeers = [\"tcp://p:1\"]\nbackends = [\"tcp://b:1\"]\n",
        5,
        "service.backends",
        "a service has peers or backends, not both",
    );
    assert_err(
        "\n[[service]]\nname = \"x\"\n",
        2,
        "service",
        "needs `peers`",
    );
    assert_err(
        "[[service]]\nname = \"x\"\npeers = []\nbackends = []\n",
        1,
        "service",
        "needs `peers`",
    );
    assert_err(
        "[[service]]\nname = \"x\"\npeers = [\"tcp://p:1\"]\n",
        3,
        "service.peers",
        "ingress and needs `listen`",
    );
    assert_err(
        &format!("{ONE_BACKEND}mode = \"fan-out\"\n"),
        4,
        "service.mode",
        "invalid mode \"fan-out\"",
    );
    assert_err(
        &format!("{ONE_BACKEND}balance = \"fastest\"\n"),
        4,
        "service.balance",
        "invalid balance",
    );
    assert_err(
        &format!("{ONE_BACKEND}connect_timeout = \"3x\"\n"),
        4,
        "service.connect_timeout",
        "invalid duration \"3x\": unknown unit \"x\"",
    );
    assert_err(
        &format!("{ONE_BACKEND}connect_timeout = \"0s\"\n"),
        4,
        "service.connect_timeout",
        "greater than 0s",
    );
    assert_err(
        &format!("{ONE_BACKEND}idle_timeout = \"\"\n"),
        4,
        "service.idle_timeout",
        "empty",
    );
    assert_err(
        &format!("{ONE_BACKEND}health_check = {{ interval = \"1s\" }}\n"),
        4,
        "service.health_check.timeout",
        "missing key `timeout`",
    );
    assert_err(
        &format!("{ONE_BACKEND}health_check = {{ interval = \"0s\", timeout = \"1s\" }}\n"),
        4,
        "service.health_check.interval",
        "greater than 0s",
    );
    assert_err(
        "[[service]]\nname = \"x\"\nbackends = [\"tcp://10.0.0.256:1\"]\n",
        3,
        "service.backends",
        "invalid address \"tcp://10.0.0.256:1\": invalid IPv4",
    );
    assert_err(
        "[[service]]\nname = \"x\"\nlisten = [\"tcp://a\"]\nbackends = [\"tcp://a:1\"]\n",
        3,
        "service.listen",
        "missing port",
    );
}

#[test]
fn socket_mirrors_only_and_discovered_targets_only_as_peers() {
    let svc = "[[service]]\nname = \"x\"\nlisten = [\"tcp://127.0.0.1:0\"]\n";
    assert_err(
        &format!("{svc}backends = [\"tcp://a:1\"]\nmirror = [\"srv://_m._tcp.x\"]\n"),
        5,
        "service.mirror",
        "srv:// mirrors are not supported",
    );
    for (target, why) in [
        (
            "label:app=chat",
            "label: targets name busway nodes: list them in `peers`",
        ),
        (
            "mdns:_busway._tcp.local",
            "mdns: targets are busway nodes found by multicast DNS: list them in `peers`",
        ),
    ] {
        assert_err(
            &format!(
                "{svc}backends = [\n  \"tcp://a:1\",\n  \"{target}\",\n]\nmode = \"one-to-one\"\n"
            ),
            6,
            "service.backends",
            why,
        );
    }
    assert_err(
        "[[service]]\nname = \"x\"\nlisten = [\"grpc://127.0.0.1:1\"]\nbackends = [\"tcp://a:1\"]\n",
        3,
        "service.listen",
        "grpc:// listeners are not yet supported",
    );
}

#[test]
fn several_targets_with_one_to_one_are_fine() {
    let c = parse("[[service]]\nname = \"x\"\nbackends = [\"tcp://a:1\", \"unix:///b.sock\"]\nmode = \"one-to-one\"\n");
    assert_eq!(c.services[0].targets.addresses().len(), 2);
    assert_eq!(c.services[0].mode, Mode::OneToOne);
}

#[test]
fn env_secrets_are_read_at_load() {
    // PATH is set in every test environment; its value must come through unchanged.
    let path = std::env::var("PATH").unwrap();
    let c = parse("[admin]\nlisten = \"tcp://127.0.0.1:1\"\ntoken = \"env:PATH\"\n[bus]\nsecret = \"env:PATH\"\n");
    assert_eq!(c.admin.unwrap().token.unwrap().expose(), path);
    assert_eq!(c.bus.secret.unwrap().expose(), path);
}

#[test]
fn missing_env_secret_names_the_key_and_variable() {
    let var = "BUSWAY_CONFIG_TEST_SURELY_UNSET_7F3A";
    assert!(std::env::var_os(var).is_none());
    assert_err(
        &format!("[bus]\nsecret = \"env:{var}\"\n"),
        2,
        "bus.secret",
        &format!("environment variable {var} is not set"),
    );
    assert_err(
        &format!("[admin]\nlisten = \"tcp://127.0.0.1:1\"\n\ntoken = \"env:{var}\"\n"),
        4,
        "admin.token",
        var,
    );
    assert_err("[bus]\nsecret = \"\"\n", 2, "bus.secret", "cannot be empty");
}

#[test]
fn secrets_never_show_in_debug_or_render() {
    let secret = "hunter2-do-not-print";
    let c = parse(&format!(
        "[admin]\nlisten = \"tcp://127.0.0.1:1\"\ntoken = \"{secret}\"\n[bus]\nsecret = \"{secret}\"\n"
    ));
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("redacted"));
    let rendered = render_toml(&c);
    assert!(!rendered.contains(secret), "{rendered}");
    assert!(
        rendered.contains("token = \"<redacted secret>\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("secret = \"<redacted secret>\""),
        "{rendered}"
    );
}

#[test]
fn load_toml_reads_a_file_and_reports_read_errors() {
    let dir = std::env::temp_dir().join(format!("busway-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("busway.toml");
    std::fs::write(&path, ONE_BACKEND).unwrap();
    let c = load_toml(&path).unwrap();
    assert_eq!(c.services[0].name, "echo");
    std::fs::write(&path, "[node]\nbogus = 1\n").unwrap();
    let e = load_toml(&path).unwrap_err();
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.line, Some(2));
    std::fs::remove_dir_all(&dir).unwrap();

    let e = load_toml(Path::new("/nonexistent/busway.toml")).unwrap_err();
    assert_eq!(e.file, "/nonexistent/busway.toml");
    assert_eq!(e.line, None);
    assert_eq!(e.key, "");
    assert!(e.message.contains("No such file"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("/nonexistent/busway.toml: {}", e.message)
    );
}

#[test]
fn errors_implement_std_error() {
    let e: Box<dyn std::error::Error> = Box::new(parse_toml("[x]", "f").unwrap_err());
    assert!(e.to_string().starts_with("f:1: x: "));
}

#[test]
fn several_targets_default_to_half_duplex_and_modes_are_explicit() {
    let svc = "[[service]]\nname = \"x\"\nlisten = [\"tcp://127.0.0.1:0\"]\n";
    let c = parse(&format!("{svc}backends = [\"tcp://a:1\", \"tcp://b:1\"]\n"));
    assert_eq!(c.services[0].mode, Mode::HalfDuplex);
    let c = parse(&format!(
        "{svc}peers = [\"tcp://a:1\", \"tcp://b:1\"]\nmode = \"full-duplex\"\n"
    ));
    assert_eq!(c.services[0].mode, Mode::FullDuplex);
    let c = parse(&format!(
        "{svc}backends = [\"tcp://a:1\", \"tcp://b:1\"]\nmode = \"one-to-one\"\n"
    ));
    assert_eq!(c.services[0].mode, Mode::OneToOne);
}

#[test]
fn srv_targets_are_accepted() {
    let svc = "[[service]]\nname = \"x\"\nlisten = [\"tcp://127.0.0.1:0\"]\n";
    let c = parse(&format!(
        "{svc}backends = [\"srv://_x._tcp.example.com\"]\n"
    ));
    assert_eq!(
        c.services[0].targets,
        Targets::Backends(vec![Address::Srv("_x._tcp.example.com".into())])
    );
    assert_eq!(c.services[0].mode, Mode::OneToOne);
}

#[test]
fn mirrors_are_parsed() {
    let svc = "[[service]]\nname = \"x\"\nlisten = [\"tcp://127.0.0.1:0\"]\n";
    let c = parse(&format!(
        "{svc}backends = [\"tcp://a:1\"]\nmirror = [\"tcp://m:1\", \"unix:///tmp/m.sock\"]\n"
    ));
    assert_eq!(c.services[0].mirror.len(), 2);
}

#[test]
fn a_secret_list_proves_its_first_and_accepts_the_others() {
    let c = parse("[bus]\nsecret = [\"new-secret-value\", \"old-secret-value\"]\n");
    assert_eq!(
        c.bus.secret.as_ref().map(Secret::expose),
        Some("new-secret-value")
    );
    let others: Vec<&str> = c.bus.also_accepted.iter().map(Secret::expose).collect();
    assert_eq!(others, ["old-secret-value"]);
    let rendered = render_toml(&c);
    assert!(
        rendered.contains("secret = [\"<redacted secret>\", \"<redacted secret>\"]"),
        "{rendered}"
    );
    assert!(!rendered.contains("secret-value"), "{rendered}");
    // One string is a list of one.
    assert!(parse("[bus]\nsecret = \"only-one-secret-value\"\n")
        .bus
        .also_accepted
        .is_empty());
    assert_err("[bus]\nsecret = []\n", 2, "bus.secret", "empty list");
    assert_err(
        "[bus]\nsecret = [\n  \"fine\",\n  5,\n]\n",
        4,
        "bus.secret",
        "expected a string",
    );
    assert_err(
        "[bus]\nsecret = 5\n",
        2,
        "bus.secret",
        "a string or an array",
    );
}

#[test]
fn a_bus_secret_under_16_bytes_is_refused_without_showing_it() {
    let text = "[bus]\nsecret = \"short-secret\"\n";
    assert_err(text, 2, "bus.secret", "at least 16 bytes");
    let e = parse_toml(text, "busway.toml").unwrap_err().to_string();
    assert!(!e.contains("short-secret"), "{e}");
    assert!(e.contains("gen-secret"), "{e}");
    // In a list, the short one is named by its own line.
    assert_err(
        "[bus]\nsecret = [\n  \"a-secret-of-20-bytes\",\n  \"tiny\",\n]\n",
        4,
        "bus.secret",
        "at least 16 bytes",
    );
    assert!(parse("[bus]\nsecret = \"exactly-16-bytes\"\n")
        .bus
        .secret
        .is_some());
}

#[test]
fn trust_and_limit_keys_are_read_with_their_defaults() {
    let d = parse("");
    assert!(!d.bus.anonymous && d.bus.resumption && d.bus.token.is_none());
    assert_eq!(d.bus.handshake_timeout, Duration::from_secs(5));
    assert_eq!(d.bus.max_transports, 4096);
    assert!(d.bus.tls.is_none());
    let c = parse(
        r#"
[bus]
anonymous = true
token = "env:PATH"
resumption = false
handshake_timeout = "2s"
max_transports = 10

[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:7000"]
backends = ["tcp://127.0.0.1:9000"]
anonymous = true
max_sessions = 100
max_sessions_per_client = 3
new_sessions_per_client = "20/s"
"#,
    );
    assert!(c.bus.anonymous && !c.bus.resumption);
    assert!(c.bus.token.is_some());
    assert_eq!(c.bus.handshake_timeout, Duration::from_secs(2));
    assert_eq!(c.bus.max_transports, 10);
    let l = &c.services[0].limits;
    assert_eq!(
        *l,
        ServiceLimits {
            anonymous: true,
            max_sessions: 100,
            max_sessions_per_client: 3,
            new_sessions_per_client: 20,
        }
    );
    assert_eq!(
        parse("[[service]]\nname = \"s\"\nbackends = [\"tcp://127.0.0.1:1\"]\n").services[0].limits,
        ServiceLimits::default()
    );
    assert_err(
        "[bus]\nmax_transports = 0\n",
        2,
        "bus.max_transports",
        "between 1",
    );
    assert_err(
        "[bus]\nhandshake_timeout = \"0s\"\n",
        2,
        "bus.handshake_timeout",
        "",
    );
    assert_err(
        "[[service]]\nname = \"s\"\nbackends = [\"tcp://127.0.0.1:1\"]\nnew_sessions_per_client = \"5/h\"\n",
        4,
        "service.new_sessions_per_client",
        "invalid rate",
    );
    assert_err(
        "[[service]]\nname = \"s\"\nbackends = [\"tcp://127.0.0.1:1\"]\nmax_sessions = -1\n",
        4,
        "service.max_sessions",
        "between 0",
    );
}

#[test]
fn tls_sections_are_checked_for_what_they_need() {
    let c = parse(
        "[bus]\nlisten = [\"tcp://127.0.0.1:7100\"]\n[bus.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nca = \"/ca.pem\"\nserver_name = \"bus.internal\"\n",
    );
    let t = c.bus.tls.unwrap();
    assert_eq!(
        t.client_auth,
        ClientAuth::Required,
        "required is the default with ca"
    );
    assert_eq!(t.server_name.as_deref(), Some("bus.internal"));
    let no_ca = parse("[bus]\n[bus.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n");
    assert_eq!(no_ca.bus.tls.unwrap().client_auth, ClientAuth::None);
    assert_err(
        "[bus]\n[bus.tls]\ncert = \"/c.pem\"\n",
        2,
        "bus.tls.key",
        "private key",
    );
    assert_err(
        "[bus]\nlisten = [\"tcp://127.0.0.1:7100\"]\n[bus.tls]\nca = \"/ca.pem\"\n",
        3,
        "bus.tls.cert",
        "bus listeners",
    );
    assert_err(
        "[bus]\n[bus.tls]\nclient_auth = \"optional\"\n",
        3,
        "bus.tls.client_auth",
        "needs `ca`",
    );
    assert_err(
        "[bus]\n[bus.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[[service]]\nname = \"s\"\nlisten = [\"tcp://127.0.0.1:1\"]\npeers = [\"tcp://127.0.0.1:2\"]\n",
        2,
        "bus.tls.ca",
        "dials peers",
    );
    assert_err("[bus]\n[bus.tls]\nsni = \"x\"\n", 3, "bus.tls.sni", "");
    let a = parse("[admin]\nlisten = \"tcp://127.0.0.1:1\"\n[admin.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n");
    assert!(a.admin.unwrap().tls.is_some());
    assert_err(
        "[admin]\nlisten = \"tcp://127.0.0.1:1\"\n[admin.tls]\nca = \"/ca.pem\"\n",
        3,
        "admin.tls.cert",
        "HTTPS",
    );
    assert_err(
        "[admin]\nlisten = \"tcp://127.0.0.1:1\"\n[admin.tls]\ncert = \"/c\"\nkey = \"/k\"\nserver_name = \"x\"\n",
        6,
        "admin.tls.server_name",
        "",
    );
}
