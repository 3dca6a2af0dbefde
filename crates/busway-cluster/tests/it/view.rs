//! The shape of `GET /v1/cluster`, and LAN balancing over the live members.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::lan::Lan;

#[test]
fn the_view_has_the_contract_shape() {
    let mut lan = Lan::settled(80, &["a", "b"]);
    lan.run_for(Duration::from_millis(30));
    let v = lan.nodes[1].c().view(lan.now);
    let j = serde_json::to_value(&v).unwrap();
    let keys = |o: &serde_json::Value| {
        let mut k: Vec<String> = o.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&j), ["era", "history", "members", "owner", "self"]);
    assert_eq!(j["owner"], "a");
    assert_eq!(j["self"], "b");
    assert_eq!(j["era"], 1);
    let members = j["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        keys(&members[0]),
        ["address", "incarnation", "last_seen_ms", "name", "role"]
    );
    assert_eq!(members[0]["name"], "b");
    assert_eq!(members[0]["last_seen_ms"], 0);
    assert_eq!(members[1]["role"], "owner");
    assert_eq!(members[1]["address"], "tcp://198.18.0.10:7100");
    let seen = members[1]["last_seen_ms"].as_u64().unwrap();
    assert!(seen <= 200, "{seen}");
    let h = j["history"].as_array().unwrap();
    assert_eq!(keys(&h[0]), ["at", "era", "event", "node", "seq"]);
    assert_eq!(h[0]["event"], "join");
    assert_eq!(h[0]["node"], "a");
    assert_eq!(h[1]["event"], "takeover");
    assert_eq!(h[1]["seq"], 2);
    assert_eq!(h[0]["at"], "2025-06-15T15:06:40.650Z");
    // Null owner before any cluster.
    let mut lone = Lan::new(81);
    lone.spawn("z", 100);
    let v = serde_json::to_value(lone.nodes[0].c().view(lone.now)).unwrap();
    assert!(v["owner"].is_null());
}

#[test]
fn every_member_serves_and_the_choice_is_stable() {
    let mut lan = Lan::settled(82, &["a", "b", "c"]);
    let clients: Vec<SocketAddr> = (0..3000u16)
        .map(|i| SocketAddr::from(([198, 19, (i >> 8) as u8, i as u8], 30000 + i)))
        .collect();
    let picks = |lan: &Lan| -> Vec<String> {
        clients
            .iter()
            .map(|c| lan.nodes[0].c().pick(*c).unwrap().name)
            .collect()
    };
    let before = picks(&lan);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for p in &before {
        *count.entry(p.as_str()).or_default() += 1;
    }
    assert_eq!(count.len(), 3, "the owner serves too: {count:?}");
    assert!(
        count.values().all(|n| (850..=1150).contains(n)),
        "{count:?}"
    );
    // Every member computes the same choice.
    let from_b: Vec<String> = clients
        .iter()
        .map(|c| lan.nodes[1].c().pick(*c).unwrap().name)
        .collect();
    assert_eq!(from_b, before);
    // Stable under loss while membership is.
    lan.loss = 0.05;
    lan.run_for(Duration::from_secs(20));
    assert_eq!(picks(&lan), before);
    // c goes: only c's clients move.
    lan.loss = 0.0;
    lan.leave(2);
    lan.run_for(Duration::from_millis(100));
    let after = picks(&lan);
    for (x, y) in before.iter().zip(&after) {
        if x != "c" {
            assert_eq!(x, y);
        }
    }
    assert!(!after.iter().any(|p| p == "c"));
    let me = lan.nodes[0].c().pick(clients[0]).unwrap();
    assert_eq!(me.is_self, me.name == "a");
}
