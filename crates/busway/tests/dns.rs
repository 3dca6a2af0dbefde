//! Living target sets through a real DNS server (dnsmasq on a loopback port): every A record is
//! a target, SRV priority and weight are honoured, and a changed answer is picked up at its TTL
//! (and the addresses it dropped cost nothing more).

mod common;

use std::time::Duration;

use busway_test_support::dns::Dnsmasq;
use common::*;

/// A direct (L4) node resolving through `dns`, in front of `backends`.
fn direct_node(dir: &TempDir, dns: &Dnsmasq, backends: &str) -> Proc {
    direct_node_with(dir, dns, backends, "")
}

/// [`direct_node`] with `extra` keys in its service.
fn direct_node_with(dir: &TempDir, dns: &Dnsmasq, backends: &str, extra: &str) -> Proc {
    let cfg = format!(
        r#"
[node]
name = "dns-node"
[admin]
listen = "tcp://127.0.0.1:0"
[dns]
servers = ["{}"]
min_ttl = "1s"
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
backends = [{backends}]
mode = "one-to-one"
{extra}
"#,
        dns.addr
    );
    Proc::run_toml(dir, "n.toml", &cfg)
}

#[test]
fn three_a_records_are_three_targets_used_round_robin() {
    let dir = TempDir::new("dns-a");
    let echoes = backends::echo_on_loopbacks(&[1, 2, 3]);
    let port = echoes[0].addr.rsplit(':').next().unwrap().to_string();
    let dns = Dnsmasq::start(
        &dir,
        "127.0.0.1 svc.test\n127.0.0.2 svc.test\n127.0.0.3 svc.test\n",
        &[],
    );
    let node = direct_node(&dir, &dns, &format!("\"tcp://svc.test:{port}\""));
    for i in 0..9 {
        let mut c = connect(&node.addr("chat"));
        roundtrip(&mut c, format!("rr {i}").as_bytes());
    }
    for e in &echoes {
        assert_eq!(e.accepted(), 3, "{}", e.addr);
    }
    let services = http::get(&node.addr("admin"), "/v1/services").body;
    for o in 1..=3 {
        assert!(
            services.contains(&format!("tcp://127.0.0.{o}:{port}")),
            "{services}"
        );
    }
}

#[test]
fn a_changed_answer_is_picked_up_within_five_seconds() {
    let dir = TempDir::new("dns-ttl");
    let echoes = backends::echo_on_loopbacks(&[4, 5]);
    let port = echoes[0].addr.rsplit(':').next().unwrap().to_string();
    let dns = Dnsmasq::start(&dir, "127.0.0.4 moving.test\n", &[]);
    let node = direct_node(&dir, &dns, &format!("\"tcp://moving.test:{port}\""));
    let mut c = connect(&node.addr("chat"));
    roundtrip(&mut c, b"old");
    assert_eq!(echoes[0].accepted(), 1);
    dns.set_hosts("127.0.0.5 moving.test\n");
    let moved = wait_for(Duration::from_secs(5), || {
        let mut c = connect(&node.addr("chat"));
        roundtrip(&mut c, b"new?");
        echoes[1].accepted() > 0
    });
    assert!(moved, "the new record was not used within 5 s");
    // The session opened before the change was not touched.
    roundtrip(&mut c, b"still on the old one");
}

#[test]
fn srv_records_by_priority_then_weight() {
    let dir = TempDir::new("dns-srv");
    let heavy = backends::echo();
    let light = backends::echo();
    let backup = backends::echo();
    let port = |b: &backends::Backend| b.addr.rsplit(':').next().unwrap().to_string();
    let dns = Dnsmasq::start(
        &dir,
        "127.0.0.1 t.test\n",
        &[
            format!("_chat._tcp.svc.test,t.test,{},10,3", port(&heavy)),
            format!("_chat._tcp.svc.test,t.test,{},10,1", port(&light)),
            format!("_chat._tcp.svc.test,t.test,{},20,1", port(&backup)),
        ],
    );
    let node = direct_node(&dir, &dns, "\"srv://_chat._tcp.svc.test\"");
    for _ in 0..8 {
        let mut c = connect(&node.addr("chat"));
        roundtrip(&mut c, b"srv");
    }
    assert_eq!(
        (heavy.accepted(), light.accepted(), backup.accepted()),
        (6, 2, 0)
    );
}

#[test]
fn a_name_that_does_not_resolve_is_not_fatal_and_readyz_names_it() {
    let dir = TempDir::new("dns-nx");
    let dns = Dnsmasq::start(&dir, "127.0.0.1 other.test\n", &[]);
    let node = direct_node(&dir, &dns, "\"tcp://missing.test:80\"");
    let r = http::get(&node.addr("admin"), "/readyz");
    assert_eq!(r.status, 503);
    assert!(
        r.body.contains("chat") && r.body.contains("missing.test"),
        "{}",
        r.body
    );
    // Sessions are refused (closed) while it does not resolve, and the node keeps running.
    let mut c = connect(&node.addr("chat"));
    let mut buf = [0u8; 4];
    assert_eq!(std::io::Read::read(&mut c, &mut buf).unwrap_or(0), 0);
    // The log is read by another thread, a little behind the node.
    assert!(
        wait_for(Duration::from_secs(2), || node
            .stderr()
            .contains("missing.test")),
        "{}",
        node.stderr()
    );
    assert!(metric(
        &node.addr("admin"),
        "busway_dns_lookup_failures_total{service=\"chat\"}"
    )
    .is_some_and(|v| v >= 1.0));
    assert_eq!(http::get(&node.addr("admin"), "/healthz").status, 200);
}

#[test]
fn an_address_the_answer_dropped_gets_no_more_health_checks() {
    let dir = TempDir::new("dns-gone");
    let echoes = backends::echo_on_loopbacks(&[6, 7]);
    let port = echoes[0].addr.rsplit(':').next().unwrap().to_string();
    let dns = Dnsmasq::start(&dir, "127.0.0.6 gone.test\n", &[]);
    let node = direct_node_with(
        &dir,
        &dns,
        &format!("\"tcp://gone.test:{port}\""),
        "health_check = { interval = \"100ms\", timeout = \"500ms\" }",
    );
    // Each health check is one connection accepted by the backend.
    assert!(
        wait_for(Duration::from_secs(3), || echoes[0].accepted() >= 3),
        "127.0.0.6 is not health-checked"
    );
    dns.set_hosts("127.0.0.7 gone.test\n");
    assert!(
        wait_for(Duration::from_secs(5), || echoes[1].accepted() >= 3),
        "the new address is not health-checked"
    );
    let before = echoes[0].accepted();
    // Ten check intervals.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        echoes[0].accepted(),
        before,
        "the address that left the answer is still checked"
    );
    assert_eq!(http::get(&node.addr("admin"), "/healthz").status, 200);
}

/// A peer name with two A records is two transports; once the answer drops one, that pool is
/// stopped: its transport drains and closes, and it is not dialled again (issue 10, item 13).
#[test]
fn a_peer_address_the_answer_dropped_is_no_longer_dialled() {
    let dir = TempDir::new("dns-peer");
    let backend = backends::echo();
    // Two egress nodes on one port of two loopback addresses.
    let port = backends::closed_port()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let egress_at = |ip: &str, name: &str| {
        let cfg = egress_toml(&backend.url(), "")
            .replace(
                "listen = [\"tcp://127.0.0.1:0\"]\nsecret",
                &format!("listen = [\"tcp://{ip}:{port}\"]\nsecret"),
            )
            .replace("name = \"egress\"", &format!("name = \"{name}\""));
        Proc::run_toml(&dir, &format!("{name}.toml"), &cfg)
    };
    let e1 = egress_at("127.0.0.1", "egress-one");
    let e2 = egress_at("127.0.0.2", "egress-two");
    let dns = Dnsmasq::start(&dir, "127.0.0.1 peers.test\n127.0.0.2 peers.test\n", &[]);
    let cfg = ingress_toml(&format!("tcp://peers.test:{port}"), "").replace(
        "[bus]",
        &format!(
            "[dns]\nservers = [\"{}\"]\nmin_ttl = \"1s\"\n[bus]",
            dns.addr
        ),
    );
    let ingress = Proc::run_toml(&dir, "i.toml", &cfg);
    let admin = ingress.addr("admin");
    wait_peers_up(&admin, 2);
    let up_at = |p: &Proc| {
        http::get(&p.addr("admin"), "/v1/peers")
            .body
            .matches("\"state\":\"up\"")
            .count()
    };
    assert_eq!((up_at(&e1), up_at(&e2)), (1, 1));
    dns.set_hosts("127.0.0.1 peers.test\n");
    // Sessions refresh the expired answer; soon only one transport is left, at both ends.
    let gone = wait_for(Duration::from_secs(8), || {
        let mut c = connect(&ingress.addr("chat"));
        roundtrip(&mut c, b"ping");
        up_at(&e2) == 0 && up_at(&ingress) == 1
    });
    assert!(
        gone,
        "ingress: {}\negress-two: {}",
        http::get(&admin, "/v1/peers").body,
        http::get(&e2.addr("admin"), "/v1/peers").body
    );
    // And it stays gone: no redial of the dropped address.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        up_at(&e2),
        0,
        "{}",
        http::get(&e2.addr("admin"), "/v1/peers").body
    );
    assert!(
        ingress.wait_stderr("peer no longer used", Duration::from_secs(3)),
        "{}",
        ingress.stderr()
    );
}
