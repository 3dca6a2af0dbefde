//! Founding, joining, and moving the address when the owner goes.

use std::time::Duration;

use busway_cluster::{EventKind, Notice, Output, TakeoverReason};

use crate::lan::Lan;

#[test]
fn a_lone_node_founds_era_one() {
    let mut lan = Lan::new(1);
    let a = lan.spawn("a", 100);
    lan.run_for(Duration::from_millis(600));
    assert!(lan.owners().is_empty(), "still listening for a cluster");
    lan.run_for(Duration::from_millis(100));
    assert_eq!(lan.owner(), a);
    let n = &lan.nodes[a];
    assert_eq!(lan.ms(n.adds[0]), 650, "after the discovery time");
    assert_eq!(n.c().era(), 1);
    let kinds: Vec<EventKind> = n.c().history().events().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Join, EventKind::Takeover]);
    assert!(n
        .log
        .iter()
        .any(|(_, o)| *o == Output::Notice(Notice::Founded { era: 1 })));
    assert!(n.log.iter().any(|(_, o)| matches!(
        o,
        Output::Notice(Notice::Owner {
            reason: TakeoverReason::Founded
        })
    )));
    lan.run_for(Duration::from_secs(6));
    // The whole burst, and nothing after it.
    assert_eq!(
        lan.nodes[a].garps.len(),
        busway_cluster::GARP_SCHEDULE.len()
    );
    let refreshes = lan.nodes[a]
        .log
        .iter()
        .filter(|(_, o)| *o == Output::RefreshAddress)
        .count();
    assert_eq!(refreshes, 6, "one a second");
}

#[test]
fn nodes_booting_together_elect_the_lowest_name() {
    let mut lan = Lan::new(9);
    for n in ["c", "b", "a"] {
        lan.spawn(n, 100);
        lan.run_for(Duration::from_millis(100));
    }
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.owner(), 2, "a, though it booted last");
    assert_eq!(lan.nodes.iter().map(|n| n.adds.len()).sum::<usize>(), 1);
    assert!(
        lan.nodes.iter().all(|n| n.c().era() == 1),
        "one era founded"
    );
}

#[test]
fn joiners_follow_without_moving_the_address() {
    let mut lan = Lan::settled(2, &["b", "a", "c"]);
    let t = lan.now;
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.changes_after(t), 0);
    assert_eq!(lan.owner(), 0, "b keeps it though a's name ranks lower");
    for n in &lan.nodes {
        assert_eq!(n.c().era(), 1);
        assert_eq!(n.c().owner(), Some("b"));
        assert_eq!(n.c().metrics().members, 3);
        assert_eq!(
            n.c().history().digest(),
            lan.nodes[0].c().history().digest()
        );
    }
    // The joiners heard the owner's answer to their hello and did not wait out discovery:
    // a, started at 1000 ms, is recorded at once.
    let a_joined = lan.nodes[0]
        .c()
        .history()
        .events()
        .find(|e| e.node == "a")
        .map(|e| e.at_ms - crate::lan::EPOCH_MS)
        .unwrap();
    assert!(
        (1000..1010).contains(&a_joined),
        "a joined at {a_joined} ms"
    );
    let joins = lan.nodes[0]
        .c()
        .history()
        .events()
        .filter(|e| e.kind == EventKind::Join)
        .count();
    assert_eq!(joins, 3);
}

#[test]
fn a_silent_death_moves_the_address_within_a_second() {
    // Killed at every phase of the advert interval.
    for phase in 0..10u64 {
        let mut lan = Lan::settled(3 + phase, &["a", "b", "c"]);
        lan.run_for(Duration::from_millis(phase * 20));
        let t = lan.now;
        lan.kill(0);
        lan.run_for(Duration::from_secs(2));
        let b = &lan.nodes[1];
        assert_eq!(lan.owners(), vec![1]);
        assert!(
            lan.nodes[0].has_address,
            "a's address stays on its dead interface"
        );
        let took = b.adds[0] - t;
        assert!(took <= Duration::from_secs(1), "phase {phase}: {took:?}");
        assert!(took <= lan.timing.takeover_bound() + Duration::from_millis(2));
        // Not before the adverts were missed and the probes went unanswered.
        assert!(
            took >= Duration::from_millis(600),
            "phase {phase}: {took:?}"
        );
        assert!(lan.nodes[2].adds.is_empty(), "c defers to b");
        let last: Vec<(EventKind, String)> = b
            .c()
            .history()
            .events()
            .rev()
            .take(2)
            .map(|e| (e.kind, e.node.clone()))
            .collect();
        assert_eq!(
            last,
            [
                (EventKind::Takeover, "b".into()),
                (EventKind::Leave, "a".into())
            ]
        );
        assert!(b.garps[0] == b.adds[0], "gratuitous ARP at once");
        assert_eq!(b.c().metrics().takeovers_total, 1);
    }
}

#[test]
fn a_clean_leave_hands_over_at_once() {
    let mut lan = Lan::settled(20, &["a", "b"]);
    let t = lan.now;
    lan.leave(0);
    lan.run_for(Duration::from_millis(50));
    assert!(!lan.nodes[0].has_address);
    assert_eq!(lan.owners(), vec![1]);
    assert!(lan.nodes[1].adds[0] - t < Duration::from_millis(5));
}

#[test]
fn a_joiner_with_higher_priority_takes_over() {
    let mut lan = Lan::settled(21, &["a", "b"]);
    let t = lan.now;
    let c = lan.spawn("c", 200);
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.owner(), c);
    assert_eq!(lan.nodes[0].removes.len(), 1);
    assert!(lan.nodes[c].log.iter().any(|(_, o)| matches!(
        o,
        Output::Notice(Notice::Owner {
            reason: TakeoverReason::Preempted
        })
    )));
    // Two holders only between c's takeover and a hearing it.
    let overlap: Vec<_> = lan.not_one_holder.iter().filter(|(x, _)| *x > t).collect();
    assert!(overlap
        .iter()
        .all(|(x, n)| *n == 2 && *x - lan.nodes[c].adds[0] < Duration::from_millis(2)));
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.owner(), c);
}

#[test]
fn a_shorter_interval_gives_a_shorter_takeover() {
    let mut lan = Lan::new(22);
    lan.timing = busway_cluster::Timing::new(Duration::from_millis(50), 3);
    assert_eq!(lan.timing.takeover_bound(), Duration::from_millis(200));
    lan.spawn("a", 100);
    lan.run_for(Duration::from_secs(1));
    lan.spawn("b", 100);
    lan.spawn("c", 100);
    lan.run_for(Duration::from_secs(1));
    assert_eq!(lan.owner(), 0);
    let t = lan.now;
    lan.kill(0);
    lan.run_for(Duration::from_secs(1));
    let took = lan.nodes[1].adds[0] - t;
    assert!(
        (Duration::from_millis(150)..=Duration::from_millis(201)).contains(&took),
        "{took:?}"
    );
}
