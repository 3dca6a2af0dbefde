//! Forged, foreign, replayed and malformed datagrams: ignored, counted, reported at most once
//! a second, never obeyed.

use std::net::SocketAddr;
use std::time::Duration;

use busway_cluster::wire::{Advert, Body, Header, Message, Role, Sealer};
use busway_cluster::{Output, RejectReason};

use crate::lan::{Lan, CLUSTER, SECRET};

const ATTACKER: &str = "198.18.0.99:7946";

fn attacker() -> SocketAddr {
    ATTACKER.parse().unwrap()
}

/// An advert from "z" claiming the address with the highest priority there is.
fn usurper(seq: u64) -> Message {
    Message {
        header: Header {
            cluster: CLUSTER.into(),
            node: "z".into(),
            incarnation: 1,
            seq,
            era: 1,
        },
        body: Body::Advert(Advert {
            role: Role::Owner,
            priority: u32::MAX,
            events: u32::MAX,
            digest: 1,
            owner: "z".into(),
            bus: String::new(),
            interval_ms: 200,
        }),
    }
}

fn rejected(lan: &Lan, i: usize, reason: RejectReason) -> u64 {
    lan.nodes[i].c().metrics().rejected(reason)
}

#[test]
fn a_forged_advert_is_not_obeyed() {
    let mut lan = Lan::settled(50, &["a", "b"]);
    let t = lan.now;
    let forged = Sealer::new(CLUSTER, b"guessed secret").seal(&usurper(u64::MAX - 1));
    for i in 0..2 {
        lan.inject(i, attacker(), &forged);
    }
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.changes_after(t), 0);
    assert_eq!(lan.owner(), 0);
    assert_eq!(rejected(&lan, 0, RejectReason::Signature), 1);
    assert_eq!(rejected(&lan, 1, RejectReason::Signature), 1);
    assert_eq!(
        lan.nodes[1].c().metrics().members,
        2,
        "z never became a member"
    );
}

#[test]
fn an_advert_of_another_cluster_is_counted_apart() {
    let mut lan = Lan::settled(51, &["a", "b"]);
    let t = lan.now;
    let mut m = usurper(1);
    m.header.cluster = "next-door".into();
    // Even with our own secret: the cluster id is checked.
    let foreign = Sealer::new("next-door", SECRET).seal(&m);
    lan.inject(0, attacker(), &foreign);
    lan.run_for(Duration::from_secs(1));
    assert_eq!(lan.changes_after(t), 0);
    assert_eq!(rejected(&lan, 0, RejectReason::Cluster), 1);
    assert_eq!(rejected(&lan, 0, RejectReason::Signature), 0);
}

#[test]
fn replayed_adverts_do_not_keep_a_dead_owner_alive() {
    let mut lan = Lan::settled(52, &["a", "b"]);
    let captured = lan.adverts_of(0);
    assert!(captured.len() > 10);
    let t = lan.now;
    lan.kill(0);
    // The attacker keeps replaying a's adverts to b, every 50 ms.
    for k in 0..40 {
        let d = &captured[captured.len() - 1 - (k % 10)];
        lan.inject(1, attacker(), d);
        lan.run_for(Duration::from_millis(50));
    }
    let b = &lan.nodes[1];
    assert_eq!(b.adds.len(), 1, "b took over regardless");
    assert!(b.adds[0] - t <= Duration::from_secs(1));
    assert_eq!(rejected(&lan, 1, RejectReason::Replay), 40);
}

#[test]
fn garbage_is_malformed_and_reported_once_a_second() {
    let mut lan = Lan::settled(53, &["a", "b"]);
    let t = lan.now;
    let good = lan.adverts_of(0).pop().unwrap();
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        vec![0; 2000],
        good[..good.len() - 1].to_vec(),
        [&good[..], b"x"].concat(),
    ];
    for i in 0..20u8 {
        junk.push((0..u16::from(i) * 37).map(|j| (j as u8) ^ i).collect());
    }
    let n = junk.len() as u64;
    for j in &junk {
        lan.inject(1, attacker(), j);
    }
    lan.run_for(Duration::from_millis(100));
    // The truncated and extended adverts fail on their tags, the rest on parsing.
    let bad =
        rejected(&lan, 1, RejectReason::Malformed) + rejected(&lan, 1, RejectReason::Signature);
    assert_eq!(bad, n);
    let reports: Vec<u64> = lan.nodes[1]
        .log
        .iter()
        .filter_map(|(x, o)| match o {
            Output::Rejected {
                reason: RejectReason::Malformed,
                suppressed,
                ..
            } if *x >= t => Some(*suppressed),
            _ => None,
        })
        .collect();
    assert_eq!(reports, vec![0], "one report, the rest held back");
    lan.run_for(Duration::from_secs(1));
    lan.inject(1, attacker(), b"again");
    let last = lan.nodes[1].log.last().cloned();
    let malformed = rejected(&lan, 1, RejectReason::Malformed);
    assert!(matches!(
        last,
        Some((_, Output::Rejected { reason: RejectReason::Malformed, suppressed, .. }))
            if suppressed == malformed - 2
    ));
    assert_eq!(lan.changes_after(t), 0);
}
