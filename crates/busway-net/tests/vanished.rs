//! A target set resolving through a real DNS server (dnsmasq on a loopback port, as in
//! `crates/busway/tests/dns.rs`): when the answer stops listing an endpoint, that endpoint is
//! retired, its connect probe ends, and `changes()` tells the node.

use std::time::{Duration, Instant};

use busway_config::{Address, DnsConfig};
use busway_net::{EndpointAddr, Resolver, TargetSet};
use busway_test_support::{backends, dns::Dnsmasq, TempDir};

fn only_addr(set: &TargetSet) -> Vec<EndpointAddr> {
    set.endpoints().iter().map(|e| e.addr.clone()).collect()
}

#[tokio::test]
async fn an_endpoint_the_answer_dropped_is_probed_no_more() {
    let dir = TempDir::new("net-vanished");
    let dns = Dnsmasq::start(&dir, "127.0.0.1 moving.test\n", &[]);
    // Bound and never listening: every probe of 127.0.0.1 on it is refused.
    let port: u16 = backends::refusing_addr()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let resolver = Resolver::new(&DnsConfig {
        servers: vec![dns.addr.parse().expect("dnsmasq address")],
        min_ttl: Duration::from_secs(1),
    });
    let set = TargetSet::new(
        &[Address::Tcp {
            host: "moving.test".into(),
            port,
        }],
        resolver,
    );
    let mut changes = set.changes();
    set.refresh().await;
    let at = |o: u8| EndpointAddr::Tcp(([127, 0, 0, o], port).into());
    assert_eq!(only_addr(&set), vec![at(1)]);
    assert!(
        changes.has_changed().unwrap_or(false),
        "no change for the first answer"
    );
    changes.borrow_and_update();

    let old = set.endpoints().remove(0);
    old.eject("connect refused", Duration::from_millis(200));
    assert!(old.is_probing());

    dns.set_hosts("127.0.0.2 moving.test\n");
    // The answer's TTL is 1 s; refresh as sessions do until the new one is in.
    let deadline = Instant::now() + Duration::from_secs(5);
    while only_addr(&set) != vec![at(2)] && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if set.needs_refresh() {
            set.refresh().await;
        }
    }
    assert_eq!(only_addr(&set), vec![at(2)], "the new answer never came");
    assert!(
        changes.has_changed().unwrap_or(false),
        "changes() missed it"
    );
    assert!(old.is_retired());
    assert!(!set.endpoints()[0].is_retired());
    // Its probe was asleep in its backoff (1 s, then 2 s): retirement wakes it to end.
    let deadline = Instant::now() + Duration::from_millis(500);
    while old.is_probing() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!old.is_probing(), "the vanished endpoint is still probed");
}
