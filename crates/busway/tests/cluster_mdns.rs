//! mDNS discovery between namespaces (CONTRACT section 7): three cluster members with
//! `mdns = true` advertise `_busway._tcp.local`, and a node in the gateway namespace whose
//! service has the peers target `mdns:_busway._tcp.local` carries its sessions to them, over
//! the bus, to each member's own admin API (which says which member answered). A member that
//! stops cleanly leaves the target set within seconds, and comes back when it starts again;
//! forged answers are ignored and logged at most once a second. Root only, like the other lab
//! tests.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use busway_test_support::http;
use busway_test_support::lab::{Lab, GATEWAY};
use common::lan::{available, wait, LanCluster};
use serde_json::Value;

/// What the members' `mdns:` targets and the gateway's see of each member.
const BUS_PORT: u16 = 7100;
/// The bound on a clean stop's leaving: the goodbye is sent before the node drains, and
/// browsers drop a record one second after its goodbye.
const LEAVES_WITHIN: Duration = Duration::from_secs(4);
const SIGHUP: i32 = 1;

/// The lab's member configuration with `mdns = true`; member 1 also has a service whose peers
/// are found by mDNS, to show that a member leaves itself out.
fn member(c: &LanCluster, i: usize) -> String {
    let mut text = c
        .config(i)
        .replace("[cluster]\n", "[cluster]\nmdns = true\n");
    if i == 1 {
        text.push_str(
            "\n[[service]]\nname = \"seen\"\nlisten = [\"tcp://127.0.0.1:7001\"]\npeers = [\"mdns:_busway._tcp.local\"]\n",
        );
    }
    text
}

/// A node of no cluster in the gateway namespace: `web` on its loopback, carried to whatever
/// mDNS finds.
const GATEWAY_NODE: &str = r#"[node]
name = "gw"
shutdown_grace = "1s"

[admin]
listen = "tcp://127.0.0.1:9901"

[bus]
secret = "lab-bus-secret-0123456789"

[[service]]
name = "web"
listen = ["tcp://127.0.0.1:7000"]
peers = ["mdns:_busway._tcp.local"]
connect_timeout = "2s"
"#;

/// The addresses of service `name`'s targets, as `GET /v1/services` on `ns` lists them.
fn targets(ns: &str, name: &str) -> BTreeSet<String> {
    let name = name.to_string();
    let body = Lab::within(ns, || http::get("127.0.0.1:9901", "/v1/services").body);
    let all: Value = serde_json::from_str(&body).expect("services JSON");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == name.as_str())
        .flat_map(|s| s["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["address"].as_str().map(str::to_string))
        .collect()
}

fn bus_urls(members: &[usize]) -> BTreeSet<String> {
    members
        .iter()
        .map(|&i| format!("tcp://{}:{BUS_PORT}", Lab::member_ip(i)))
        .collect()
}

/// One session through the gateway's `web`: the member whose admin API answered it.
fn served_by(ns: &str) -> String {
    let a = Lab::within(ns, || http::get("127.0.0.1:7000", "/v1/cluster"));
    assert_eq!(a.status, 200, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).expect("cluster JSON through the bus");
    v["self"].as_str().expect("self").to_string()
}

/// Sessions until every one of `members` has served one (at most 60); who served them.
fn serve_all(ns: &str, members: &[usize]) -> BTreeSet<String> {
    let want: BTreeSet<String> = members.iter().map(|i| format!("m{i}")).collect();
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        seen.insert(served_by(ns));
        if seen.is_superset(&want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

#[test]
fn mdns_discovery_between_namespaces() {
    if !available() {
        return;
    }
    let mut c = LanCluster::new("md", &[300, 200, 100]);
    for i in 1..=3 {
        let text = member(&c, i);
        c.start_with(i, &text);
    }
    let gw = c.lab.gateway();
    let node = c.run_in(&gw, "gw.toml", GATEWAY_NODE);

    // Every member is found, by the gateway and by m1 (which leaves itself out).
    let all = bus_urls(&[1, 2, 3]);
    assert!(
        wait(Duration::from_secs(10), || targets(&gw, "web") == all),
        "gateway targets {:?}\n{}",
        targets(&gw, "web"),
        node.stderr()
    );
    let m1 = c.lab.member(1);
    assert!(
        wait(Duration::from_secs(5), || targets(&m1, "seen")
            == bus_urls(&[2, 3])),
        "m1's own mdns: targets {:?}",
        targets(&m1, "seen")
    );

    // Real sessions cross the bus to each member found, and come back with its answer.
    let seen = serve_all(&gw, &[1, 2, 3]);
    assert_eq!(
        seen,
        BTreeSet::from(["m1".into(), "m2".into(), "m3".into()])
    );

    // m2 stops cleanly: its goodbye takes it out of both target sets.
    let stopped = Instant::now();
    c.proc(2).signal(15);
    let gone = wait(LEAVES_WITHIN, || targets(&gw, "web") == bus_urls(&[1, 3]));
    let took = stopped.elapsed();
    eprintln!(
        "a clean stop left the gateway's targets in {} ms",
        took.as_millis()
    );
    assert!(gone, "after {took:?}: {:?}", targets(&gw, "web"));
    assert!(wait(Duration::from_secs(2), || targets(&m1, "seen")
        == bus_urls(&[3])));
    let status = c.procs[1]
        .as_mut()
        .unwrap()
        .wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    c.procs[1] = None;
    for _ in 0..12 {
        let who = served_by(&gw);
        assert!(who == "m1" || who == "m3", "served by {who} after m2 left");
    }

    // m2 comes back: found again, and served again.
    let text = member(&c, 2);
    c.start_with(2, &text);
    assert!(
        wait(Duration::from_secs(10), || targets(&gw, "web") == all),
        "after m2's return: {:?}",
        targets(&gw, "web")
    );
    assert!(serve_all(&gw, &[2]).contains("m2"));

    // A reload that drops the gateway's mdns: target stops its browse; one that brings it
    // back starts another, which finds every member again.
    let m3 = format!("tcp://{}:{BUS_PORT}", Lab::member_ip(3));
    c.dir.write(
        "gw.toml",
        &GATEWAY_NODE.replace("mdns:_busway._tcp.local", &m3),
    );
    node.signal(SIGHUP);
    assert!(
        wait(Duration::from_secs(5), || targets(&gw, "web")
            == bus_urls(&[3])),
        "after the reload without mdns: {:?}",
        targets(&gw, "web")
    );
    c.dir.write("gw.toml", GATEWAY_NODE);
    node.signal(SIGHUP);
    assert!(
        wait(Duration::from_secs(10), || targets(&gw, "web") == all),
        "after the reload with mdns: again: {:?}",
        targets(&gw, "web")
    );
    assert_eq!(node.stderr().matches("mdns: browsing").count(), 2);

    // Forged answers from the gateway's namespace: instances at port 0, and instances whose
    // name is no node name, FORGED of each; none becomes a target, and the log says so at most
    // once a second per reason.
    let sent_at = Instant::now();
    Lab::within(&gw, forge_answers);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(targets(&gw, "web"), all, "a forged answer became a target");
    let logged = || node.stderr().matches("mdns: answer ignored").count();
    assert!(
        wait(Duration::from_secs(3), || logged() >= 2),
        "{}",
        node.stderr()
    );
    let log = node.stderr();
    assert!(
        log.contains("reason=\"port\"") || log.contains("reason=port"),
        "{log}"
    );
    assert!(
        log.contains("reason=\"name\"") || log.contains("reason=name"),
        "{log}"
    );
    let secs = sent_at.elapsed().as_secs() as usize + 1;
    // One line per reason per second at most.
    assert!(logged() <= 2 * secs, "{} lines in {secs} s", logged());
    drop(node);
}

/// How many instances of each kind of forgery are announced.
const FORGED: usize = 50;

/// A DNS name in wire form (no compression).
fn name(out: &mut Vec<u8>, n: &str) {
    for label in n.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// One resource record: `name`, `ty`, class IN with the cache-flush bit, TTL 120 s, `rdata`.
fn record(out: &mut Vec<u8>, n: &str, ty: u16, rdata: &[u8]) {
    name(out, n);
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&0x8001u16.to_be_bytes());
    out.extend_from_slice(&120u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// An unsolicited mDNS response announcing `instance` at 198.18.0.50 port `port`: a PTR, an
/// SRV and an A record.
fn announcement(instance: &str, port: u16) -> Vec<u8> {
    let full = format!("{instance}._busway._tcp.local");
    let host = "forged.local";
    let mut out = vec![0, 0, 0x84, 0, 0, 0, 0, 3, 0, 0, 0, 0];
    let mut ptr = Vec::new();
    name(&mut ptr, &full);
    record(&mut out, "_busway._tcp.local", 12, &ptr);
    let mut srv = vec![0, 0, 0, 0];
    srv.extend_from_slice(&port.to_be_bytes());
    name(&mut srv, host);
    record(&mut out, &full, 33, &srv);
    record(&mut out, host, 1, &[198, 18, 0, 50]);
    out
}

/// Sends the forgeries to the mDNS group from the gateway's address and port 5353 (mDNS
/// ignores responses from any other port), beside the gateway node's own socket.
fn forge_answers() {
    let group = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353);
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5353).into())
        .unwrap();
    s.set_multicast_if_v4(&GATEWAY).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    let s: UdpSocket = s.into();
    // Each instance another one, so that the library resolves (and hands over) every one.
    for i in 0..FORGED {
        for forged in [
            announcement(&format!("evil{i}"), 0),
            announcement(&format!("not a node {i}"), 7100),
        ] {
            s.send_to(&forged, group).expect("send");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
