//! A leftover service address at start is removed before anything else; no other is ever
//! removed (the LAN asserts that at every step).

use std::time::Duration;

use busway_cluster::{Boot, Cluster, Config, History, Output};

use crate::lan::{Lan, CLUSTER, EPOCH_MS, SECRET};

fn boot(address_present: bool) -> Cluster {
    let boot = Boot {
        now: std::time::Instant::now(),
        unix_ms: EPOCH_MS,
        address_present,
    };
    Cluster::new(Config::new(CLUSTER, "a", SECRET), History::new(), boot).unwrap()
}

#[test]
fn the_first_decision_is_to_remove_a_leftover() {
    let mut c = boot(true);
    assert_eq!(c.poll_output(), Some(Output::RemoveAddress));
    assert!(matches!(c.poll_output(), Some(Output::Multicast(_))));
    let mut c = boot(false);
    assert!(matches!(c.poll_output(), Some(Output::Multicast(_))));
    assert_eq!(c.poll_output(), None);
}

#[test]
fn a_restarted_owner_removes_its_leftover_and_one_owner_remains() {
    let mut lan = Lan::settled(70, &["a", "b", "c"]);
    lan.kill(0);
    lan.run_for(Duration::from_millis(100));
    assert!(lan.nodes[0].has_address);
    lan.start(0);
    assert!(!lan.nodes[0].has_address, "removed at start");
    lan.run_for(Duration::from_secs(3));
    assert_eq!(lan.owners().len(), 1);
    let settled = lan.now;
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.changes_after(settled), 0);
}

#[test]
fn a_member_never_touches_the_address() {
    let mut lan = Lan::settled(71, &["a", "b", "c"]);
    lan.run_for(Duration::from_secs(10));
    for n in &lan.nodes[1..] {
        assert!(n.adds.is_empty() && n.removes.is_empty(), "{}", n.name);
    }
}
