//! Partitions and their heal: one owner per side while apart, one owner within an advert
//! interval after, gratuitous ARP again, and no second move once the histories merge.

use std::time::Duration;

use busway_cluster::{EventKind, Notice, Output};

use crate::lan::{Lan, LATENCY};

#[test]
fn a_partition_heals_to_one_owner_within_an_interval() {
    let mut lan = Lan::settled(30, &["a", "b", "c"]);
    let t = lan.now;
    lan.partition(&[2]);
    lan.run_for(Duration::from_secs(3));
    // c, alone, confirmed a dead and took over; a kept its side.
    assert_eq!(lan.owners(), vec![0, 2]);
    assert!(lan.nodes[2].adds[0] - t <= Duration::from_secs(1));
    let heal = lan.now;
    lan.heal();
    lan.run_for(Duration::from_secs(1));
    let interval = lan.timing.advert_interval;
    let late: Vec<_> = lan
        .not_one_holder
        .iter()
        .filter(|(x, _)| *x > heal + interval + 2 * LATENCY)
        .collect();
    assert!(late.is_empty(), "two owners past one interval: {late:?}");
    // c recorded a's and b's leaves and its takeover, so it knows more and keeps the address.
    let winner = lan.owner();
    assert_eq!(winner, 2);
    let w = &lan.nodes[winner];
    assert!(
        w.garps.iter().any(|g| *g > heal),
        "ARP again after the heal"
    );
    assert!(w
        .log
        .iter()
        .any(|(x, o)| *x > heal && *o == Output::Notice(Notice::Conflict { other: "a".into() })));
    assert_eq!(lan.nodes[0].removes.len(), 1);
    // The histories merge and nothing moves again.
    let settled = lan.now;
    lan.run_for(Duration::from_secs(20));
    assert_eq!(
        lan.changes_after(settled),
        0,
        "the address moved after the merge"
    );
    let d = lan.nodes[0].c().history().digest();
    for n in &lan.nodes {
        assert_eq!(n.c().history().digest(), d, "{} disagrees", n.name);
    }
    let h = lan.nodes[0].c().history();
    let has = |kind, node: &str, recorder: &str| {
        h.events()
            .any(|e| e.kind == kind && e.node == node && e.recorder == recorder)
    };
    assert!(has(EventKind::Leave, "c", "a"), "a's side saw c go");
    assert!(
        has(EventKind::Takeover, "c", "c"),
        "c's side saw it take over"
    );
    assert!(has(EventKind::Join, "a", "c"), "and then a come back");
}

#[test]
fn a_partitioned_owner_with_higher_priority_keeps_it_after_the_heal() {
    let mut lan = Lan::new(31);
    lan.spawn("a", 200);
    lan.run_for(Duration::from_secs(1));
    lan.spawn("b", 100);
    lan.spawn("c", 100);
    lan.run_for(Duration::from_secs(2));
    lan.partition(&[0]);
    lan.run_for(Duration::from_secs(3));
    assert_eq!(lan.owners(), vec![0, 1]);
    let heal = lan.now;
    lan.heal();
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.owner(), 0, "priority first, whatever the history says");
    assert_eq!(lan.nodes[1].removes.len(), 1);
    // Whether or not a heard b as an owner before b yielded, it announces itself again: the
    // gateway's cache named b.
    let after: Vec<_> = lan.nodes[0].garps.iter().filter(|g| **g > heal).collect();
    assert!(!after.is_empty(), "no ARP from a after the heal");
    assert!(*after[0] - heal <= lan.timing.advert_interval + 2 * LATENCY);
    let late = lan
        .not_one_holder
        .iter()
        .filter(|(x, _)| *x > heal + lan.timing.advert_interval + 2 * LATENCY)
        .count();
    assert_eq!(late, 0);
}

#[test]
fn an_owner_cut_off_alone_heals_in_one_step() {
    for seed in 0..4 {
        let mut lan = Lan::settled(32 + seed, &["a", "b", "c", "d"]);
        lan.partition(&[0]);
        lan.run_for(Duration::from_secs(3));
        assert_eq!(lan.owners(), vec![0, 1], "b took over the bigger side");
        let heal = lan.now;
        lan.heal();
        lan.run_for(Duration::from_secs(1));
        let late = lan
            .not_one_holder
            .iter()
            .filter(|(x, _)| *x > heal + lan.timing.advert_interval + 2 * LATENCY)
            .count();
        assert_eq!(late, 0, "seed {seed}");
        let winner = lan.owner();
        let moves = lan.changes_after(heal);
        assert_eq!(moves, 1, "seed {seed}: only the loser's removal");
        lan.run_for(Duration::from_secs(10));
        assert_eq!(lan.owner(), winner);
        assert_eq!(
            lan.changes_after(heal),
            1,
            "seed {seed}: a second move after the merge"
        );
    }
}

#[test]
fn a_heal_under_loss_settles_and_stays() {
    for seed in 0..6 {
        let mut lan = Lan::settled(90 + seed, &["a", "b", "c"]);
        lan.loss = 0.05;
        lan.partition(&[1]);
        lan.run_for(Duration::from_secs(3));
        assert_eq!(lan.owners(), vec![0, 1], "seed {seed}");
        let heal = lan.now;
        lan.heal();
        lan.run_for(Duration::from_secs(2));
        let late = lan
            .not_one_holder
            .iter()
            .filter(|(x, _)| *x > heal + 3 * lan.timing.advert_interval)
            .count();
        assert_eq!(late, 0, "seed {seed}: two owners for three intervals");
        let winner = lan.owner();
        let settled = lan.now;
        lan.run_for(Duration::from_secs(20));
        assert_eq!(lan.changes_after(settled), 0, "seed {seed}");
        assert_eq!(lan.owner(), winner);
        lan.loss = 0.0;
        lan.run_for(Duration::from_secs(2));
        let d = lan.nodes[0].c().history().digest();
        assert!(
            lan.nodes.iter().all(|n| n.c().history().digest() == d),
            "seed {seed}"
        );
    }
}
