//! An owner stopped like a frozen VM (SIGSTOP): the others take over; when it wakes with its
//! old state it yields within an interval, and the new owner sends gratuitous ARP again.

use std::time::Duration;

use crate::lan::{Lan, LATENCY};

#[test]
fn a_frozen_owner_is_replaced_and_yields_when_it_wakes() {
    for timers_first in [true, false] {
        frozen_owner(timers_first);
    }
}

fn frozen_owner(timers_first: bool) {
    let mut lan = Lan::settled(40, &["a", "b", "c"]);
    let t = lan.now;
    lan.freeze(0);
    lan.run_for(Duration::from_secs(3));
    let b = &lan.nodes[1];
    assert_eq!(b.adds.len(), 1);
    assert!(b.adds[0] - t <= Duration::from_secs(1));
    assert!(lan.nodes[0].has_address, "frozen with the address");
    let thaw = lan.now;
    lan.thaw_with(0, timers_first);
    lan.run_for(Duration::from_secs(1));
    let a = &lan.nodes[0];
    assert_eq!(a.removes.len(), 1);
    assert!(a.removes[0] - thaw <= lan.timing.advert_interval + 2 * LATENCY);
    assert_eq!(lan.owner(), 1);
    assert!(
        lan.nodes[1].garps.iter().any(|g| *g >= thaw),
        "ARP again after the thaw"
    );
    // a is a member again, not dead and not flapping.
    let settled = lan.now;
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.changes_after(settled), 0);
    assert_eq!(lan.nodes[0].c().owner(), Some("b"));
    assert_eq!(lan.nodes[1].c().metrics().members, 3);
}

#[test]
fn a_frozen_member_comes_back_as_a_member() {
    let mut lan = Lan::settled(41, &["a", "b", "c"]);
    let t = lan.now;
    lan.freeze(2);
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.nodes[0].c().metrics().members, 2, "c's death confirmed");
    lan.thaw(2);
    lan.run_for(Duration::from_secs(2));
    assert_eq!(lan.changes_after(t), 0, "the owner never moved");
    assert_eq!(lan.nodes[0].c().metrics().members, 3);
    assert_eq!(lan.nodes[2].c().owner(), Some("a"));
}
