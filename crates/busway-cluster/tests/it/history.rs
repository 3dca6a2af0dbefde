//! Eras, incarnations and the history: late joiners learn what they missed, a returning node
//! brings what the cluster missed, and the era moves only when a node boots alone.

use std::time::Duration;

use busway_cluster::{Event, EventKind, History, Snapshot};

use crate::lan::Lan;

fn kinds_about(h: &History, node: &str) -> Vec<EventKind> {
    h.events()
        .filter(|e| e.node == node)
        .map(|e| e.kind)
        .collect()
}

#[test]
fn a_late_joiner_learns_what_it_missed() {
    let mut lan = Lan::settled(60, &["a", "b"]);
    let c = lan.spawn("c", 100);
    lan.run_for(Duration::from_secs(1));
    lan.leave(c);
    lan.run_for(Duration::from_secs(1));
    let d = lan.spawn("d", 100);
    lan.run_for(Duration::from_secs(1));
    let h = lan.nodes[d].c().history();
    assert_eq!(h.digest(), lan.nodes[0].c().history().digest());
    assert_eq!(
        kinds_about(h, "c"),
        [EventKind::Join, EventKind::Leave],
        "events from before d started"
    );
    assert_eq!(lan.nodes[d].c().era(), 1);
    assert!(lan.nodes[d].saved.is_some(), "and asked to persist them");
}

#[test]
fn a_late_joiner_gets_a_long_history_under_loss() {
    let mut lan = Lan::settled(61, &["a", "b"]);
    // Eighty restarts of b make a history of several pages.
    for _ in 0..80 {
        lan.kill(1);
        lan.start(1);
        lan.run_for(Duration::from_millis(50));
    }
    lan.run_for(Duration::from_secs(1));
    let owner = lan.nodes[0].c().history().clone();
    assert!(owner.len() > 160, "{} events", owner.len());
    lan.loss = 0.05;
    let d = lan.spawn("d", 100);
    lan.run_for(Duration::from_secs(5));
    assert_eq!(
        lan.nodes[d].c().history().digest(),
        lan.nodes[0].c().history().digest()
    );
    assert_eq!(lan.owner(), 0);
}

#[test]
fn a_returning_node_brings_events_the_cluster_missed() {
    let mut lan = Lan::settled(62, &["a", "b"]);
    // x kept a history of an era this cluster never saw (another LAN, an older run).
    let x = lan.add("x", 100);
    let mut old = History::new();
    let lost = Event {
        era: 1,
        at_ms: 1_600_000_000_000,
        recorder: "x".into(),
        kind: EventKind::Takeover,
        node: "x".into(),
        incarnation: 1,
    };
    old.merge([lost.clone()]);
    lan.nodes[x].saved = Some(Snapshot {
        incarnation: 1,
        history: old,
    });
    lan.start(x);
    lan.run_for(Duration::from_secs(2));
    for n in &lan.nodes {
        assert!(
            n.c().history().contains(&lost),
            "{} lacks x's event",
            n.name
        );
    }
    let d = lan.nodes[0].c().history().digest();
    assert!(lan.nodes.iter().all(|n| n.c().history().digest() == d));
    assert_eq!(lan.nodes[x].cfg.incarnation, 2);
    assert_eq!(lan.owner(), 0, "fewer events than the owner: no takeover");
}

#[test]
fn the_era_moves_only_when_a_node_boots_alone() {
    let mut lan = Lan::settled(63, &["a", "b"]);
    assert!(lan.nodes.iter().all(|n| n.c().era() == 1));
    // The owner dies: b takes over within era 1.
    lan.kill(0);
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.nodes[1].c().era(), 1);
    // a restarts and joins the running cluster: still era 1.
    lan.start(0);
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.nodes[0].c().era(), 1);
    assert_eq!(lan.nodes[0].cfg.incarnation, 2);
    // Everyone goes; b boots alone with its saved history and finds no cluster: era 2.
    lan.kill(0);
    lan.kill(1);
    lan.run_for(Duration::from_secs(1));
    lan.start(1);
    lan.run_for(Duration::from_secs(1));
    assert_eq!(lan.nodes[1].c().era(), 2);
    lan.start(0);
    lan.run_for(Duration::from_secs(1));
    assert_eq!(lan.nodes[0].c().era(), 2, "a joins era 2, does not found 3");
    let h = lan.nodes[0].c().history();
    assert_eq!(h.era(), 2);
    let eras: Vec<u32> = h.events().map(|e| e.era).collect();
    assert!(eras.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        eras.contains(&1) && eras.contains(&2),
        "both eras kept: {eras:?}"
    );
}

#[test]
fn incarnations_are_kept_per_node() {
    let mut lan = Lan::settled(64, &["a", "b"]);
    for _ in 0..3 {
        lan.kill(1);
        lan.start(1);
        lan.run_for(Duration::from_secs(1));
    }
    let h = lan.nodes[0].c().history();
    let b: Vec<(EventKind, u32)> = h
        .events()
        .filter(|e| e.node == "b")
        .map(|e| (e.kind, e.incarnation))
        .collect();
    use EventKind::*;
    assert_eq!(
        b,
        [
            (Join, 1),
            (Leave, 1),
            (Join, 2),
            (Leave, 2),
            (Join, 3),
            (Leave, 3),
            (Join, 4)
        ]
    );
    let view = lan.nodes[0].c().view(lan.now);
    let mb = view.members.iter().find(|m| m.name == "b").unwrap();
    assert_eq!(mb.incarnation, 4);
}
