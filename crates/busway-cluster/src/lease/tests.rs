//! The etcd election on a fake clock: one machine fed by hand, then three against a small
//! model of etcd (leases that expire, checked every 500 ms as etcd's lessor does; one key
//! created only if absent; every change seen by every live member).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;

const TTL: Duration = Duration::from_secs(1);

fn machine(name: &str, priority: u32, t: Instant) -> LeaseElection {
    let config = LeaseConfig {
        node: name.into(),
        priority,
        bus_address: format!("tcp://{name}:7100"),
        incarnation: 1,
    };
    LeaseElection::new(config, t, 1_700_000_000_000)
}

fn peer(name: &str, priority: u32) -> Peer {
    Peer {
        name: name.into(),
        priority,
        bus: format!("tcp://{name}:7100"),
        incarnation: 1,
    }
}

fn outputs(m: &mut LeaseElection) -> Vec<LeaseOutput> {
    std::iter::from_fn(|| m.poll_output())
        .filter(|o| !matches!(o, LeaseOutput::Notice(_)))
        .collect()
}

fn renew(m: &mut LeaseElection, t: Instant) {
    m.handle(
        t,
        Seen::Renewed {
            lease: 7,
            sent: t,
            ttl: TTL,
        },
    );
}

/// `m` connected with the key free and these peers, then its claim won.
fn owner_of(m: &mut LeaseElection, t: Instant, peers: Vec<Peer>) {
    renew(m, t);
    m.handle(
        t,
        Seen::Snapshot {
            owner: None,
            members: peers,
        },
    );
    assert_eq!(outputs(m), [LeaseOutput::Claim]);
    m.handle(t, Seen::Claimed { won: true });
    let out = outputs(m);
    assert!(
        matches!(
            out.as_slice(),
            [
                LeaseOutput::AddAddress { .. },
                LeaseOutput::SendGratuitousArp
            ]
        ),
        "{out:?}"
    );
    assert!(m.is_owner());
}

#[test]
fn the_best_ranked_claims_at_once_and_takes_the_address_when_it_wins() {
    let t = Instant::now();
    let mut m = machine("m1", 300, t);
    owner_of(&mut m, t, vec![peer("m2", 200)]);
    assert_eq!(m.metrics().takeovers_total, 1);
    assert_eq!(m.metrics().members, 2);
    let v = m.view(t);
    assert_eq!(v.owner.as_deref(), Some("m1"));
    assert_eq!(v.members[0].role, "owner");
    assert_eq!(v.members[1].role, "member");
    // The ARP burst follows the multicast owner's schedule.
    let mut arps = 0;
    while let Some(at) = m.poll_timeout() {
        if at > t + Duration::from_millis(700) {
            break;
        }
        renew(&mut m, at);
        m.handle_timeout(at);
        arps += outputs(&mut m)
            .iter()
            .filter(|o| **o == LeaseOutput::SendGratuitousArp)
            .count();
    }
    assert_eq!(arps, 4, "the burst's 50, 100, 200 and 500 ms slots");
}

#[test]
fn a_lower_ranked_member_waits_its_stagger_before_claiming() {
    let t = Instant::now();
    let mut m = machine("m3", 100, t);
    renew(&mut m, t);
    let members = vec![peer("m1", 300), peer("m2", 200)];
    m.handle(
        t,
        Seen::Snapshot {
            owner: None,
            members,
        },
    );
    assert_eq!(outputs(&mut m), []);
    let at = m.poll_timeout().expect("a claim timer");
    assert_eq!(at, t + CLAIM_STAGGER * 2);
    m.handle_timeout(at - Duration::from_millis(1));
    assert_eq!(outputs(&mut m), []);
    m.handle_timeout(at);
    assert_eq!(outputs(&mut m), [LeaseOutput::Claim]);
    // Lost: no second claim until the key changes.
    m.handle(at, Seen::Claimed { won: false });
    m.handle_timeout(at + Duration::from_secs(1));
    assert_eq!(outputs(&mut m), []);
    let winner = Holder {
        name: "m2".into(),
        lease: 9,
    };
    m.handle(at, Seen::Owner(Some(winner)));
    assert_eq!(m.view(at).owner.as_deref(), Some("m2"));
    assert!(!m.is_owner());
}

#[test]
fn an_owner_that_etcd_stops_renewing_drops_the_address_before_the_lease_can_expire() {
    let t = Instant::now();
    let mut m = machine("m1", 100, t);
    owner_of(&mut m, t, vec![]);
    let last = t + Duration::from_millis(250);
    renew(&mut m, last);
    assert!(matches!(
        outputs(&mut m).as_slice(),
        [LeaseOutput::RefreshAddress { lifetime }] if *lifetime == Duration::from_secs(1)
    ));
    // etcd goes away: the session is down, the address stays while the lease surely lives.
    m.handle(last + Duration::from_millis(10), Seen::Down);
    let mut now = last;
    while m.is_owner() {
        now = m.poll_timeout().expect("a timer while owner");
        m.handle_timeout(now);
    }
    assert_eq!(now, last + TTL - MARGIN);
    assert!(now < last + TTL, "gone before etcd could expire the lease");
    assert!(outputs(&mut m).contains(&LeaseOutput::RemoveAddress));
    // Back: the key is still under the same lease (it never expired) and is taken again.
    renew(&mut m, now + Duration::from_millis(100));
    m.handle(
        now + Duration::from_millis(100),
        Seen::Snapshot {
            owner: Some(Holder {
                name: "m1".into(),
                lease: 7,
            }),
            members: vec![],
        },
    );
    assert!(m.is_owner());
}

#[test]
fn a_higher_priority_member_makes_the_owner_resign() {
    let t = Instant::now();
    let mut m = machine("m2", 200, t);
    owner_of(&mut m, t, vec![peer("m3", 100)]);
    // An equal or lower priority changes nothing.
    m.handle(t, Seen::MemberUp(peer("m0", 200)));
    assert_eq!(outputs(&mut m), []);
    m.handle(t, Seen::MemberUp(peer("m1", 300)));
    assert_eq!(
        outputs(&mut m),
        [LeaseOutput::RemoveAddress, LeaseOutput::Resign]
    );
    assert!(!m.is_owner());
    // The key goes; m1 and m0 (equal priority, lower name) rank above m2, so it waits two
    // staggers and m1 claims meanwhile.
    m.handle(t, Seen::Owner(None));
    assert_eq!(outputs(&mut m), []);
    assert_eq!(m.poll_timeout(), Some(t + CLAIM_STAGGER * 2));
}

#[test]
fn an_owner_whose_key_is_deleted_or_taken_removes_the_address_at_once() {
    let t = Instant::now();
    let mut m = machine("m1", 100, t);
    owner_of(&mut m, t, vec![]);
    m.handle(
        t,
        Seen::Owner(Some(Holder {
            name: "m9".into(),
            lease: 99,
        })),
    );
    assert_eq!(outputs(&mut m), [LeaseOutput::RemoveAddress]);
    let mut m = machine("m1", 100, t);
    owner_of(&mut m, t, vec![]);
    m.handle(t, Seen::Owner(None));
    let out = outputs(&mut m);
    assert_eq!(out[0], LeaseOutput::RemoveAddress, "{out:?}");
}

#[test]
fn a_new_lease_ends_ownership_under_the_old_one() {
    let t = Instant::now();
    let mut m = machine("m1", 100, t);
    owner_of(&mut m, t, vec![]);
    m.handle(
        t,
        Seen::Renewed {
            lease: 8,
            sent: t,
            ttl: TTL,
        },
    );
    assert_eq!(outputs(&mut m)[0], LeaseOutput::RemoveAddress);
}

#[test]
fn an_absurd_ttl_from_etcd_is_clamped_not_a_panic() {
    let t = Instant::now();
    let mut m = machine("m1", 100, t);
    m.handle(
        t,
        Seen::Renewed {
            lease: 7,
            sent: t,
            ttl: Duration::from_secs(u64::MAX),
        },
    );
    m.handle(
        t,
        Seen::Snapshot {
            owner: None,
            members: vec![],
        },
    );
    assert_eq!(outputs(&mut m), [LeaseOutput::Claim]);
    m.handle(t, Seen::Claimed { won: true });
    assert!(m.is_owner());
    let lifetime = MAX_TTL - Duration::from_secs(2);
    assert_eq!(
        outputs(&mut m)[0],
        LeaseOutput::AddAddress { lifetime },
        "whole seconds left, less one"
    );
}

#[test]
fn leaving_removes_the_address_and_then_nothing_more_happens() {
    let t = Instant::now();
    let mut m = machine("m1", 100, t);
    owner_of(&mut m, t, vec![]);
    m.leave(t);
    assert_eq!(outputs(&mut m), [LeaseOutput::RemoveAddress]);
    assert_eq!(m.poll_timeout(), None);
    m.handle(t, Seen::Owner(None));
    assert_eq!(outputs(&mut m), []);
}

/// A model of etcd: leases with an expiry, swept every 500 ms; one owner key; member records.
struct Model {
    t0: Instant,
    expiry: BTreeMap<i64, Instant>,
    owner: Option<Holder>,
    members: BTreeMap<String, (Peer, i64)>,
}

/// Three members (priorities 300, 200, 100) and etcd, 10 ms a step; checks after every step
/// that no two members hold the address. `kill` silences member `k` at `at`.
fn run(kill: Option<(usize, Duration)>, until: Duration) -> (Vec<LeaseElection>, Vec<Instant>) {
    let t0 = Instant::now();
    let mut etcd = Model {
        t0,
        expiry: BTreeMap::new(),
        owner: None,
        members: BTreeMap::new(),
    };
    let prios = [300, 200, 100];
    let mut ms: Vec<LeaseElection> = (0..3)
        .map(|i| machine(&format!("m{}", i + 1), prios[i], t0))
        .collect();
    let mut alive = [true; 3];
    let mut took = Vec::new();
    let mut now = t0;
    let step = Duration::from_millis(10);
    while now < t0 + until {
        now += step;
        let since = now - t0;
        if let Some((k, at)) = kill {
            if since >= at {
                alive[k] = false;
            }
        }
        // etcd's lessor: expired leases go, with their keys, every 500 ms.
        if since.as_millis().is_multiple_of(500) {
            let dead: Vec<i64> = etcd
                .expiry
                .iter()
                .filter(|(_, e)| **e <= now)
                .map(|(l, _)| *l)
                .collect();
            for l in dead {
                etcd.expiry.remove(&l);
                if etcd.owner.as_ref().is_some_and(|h| h.lease == l) {
                    etcd.owner = None;
                    for (i, m) in ms.iter_mut().enumerate() {
                        if alive[i] {
                            m.handle(now, Seen::Owner(None));
                        }
                    }
                }
                let gone: Vec<String> = etcd
                    .members
                    .iter()
                    .filter(|(_, (_, ml))| *ml == l)
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in gone {
                    etcd.members.remove(&n);
                    for (i, m) in ms.iter_mut().enumerate() {
                        if alive[i] {
                            m.handle(now, Seen::MemberDown(n.clone()));
                        }
                    }
                }
            }
        }
        for i in 0..3 {
            if !alive[i] {
                continue;
            }
            let lease = i as i64 + 1;
            // Start: a lease, a record, a snapshot. Then a keepalive every 250 ms.
            if since == step {
                etcd.expiry.insert(lease, now + TTL);
                ms[i].handle(
                    now,
                    Seen::Renewed {
                        lease,
                        sent: now,
                        ttl: TTL,
                    },
                );
                let p = peer(&format!("m{}", i + 1), prios[i]);
                etcd.members.insert(p.name.clone(), (p.clone(), lease));
                for (j, m) in ms.iter_mut().enumerate() {
                    if j != i && since == step {
                        m.handle(now, Seen::MemberUp(p.clone()));
                    }
                }
                let members = etcd.members.values().map(|(p, _)| p.clone()).collect();
                let owner = etcd.owner.clone();
                ms[i].handle(now, Seen::Snapshot { owner, members });
            } else if since.as_millis().is_multiple_of(250) && etcd.expiry.contains_key(&lease) {
                etcd.expiry.insert(lease, now + TTL);
                ms[i].handle(
                    now,
                    Seen::Renewed {
                        lease,
                        sent: now,
                        ttl: TTL,
                    },
                );
            }
            if ms[i].poll_timeout().is_some_and(|t| t <= now) {
                ms[i].handle_timeout(now);
            }
            while let Some(o) = ms[i].poll_output() {
                match o {
                    LeaseOutput::AddAddress { .. } => took.push(now),
                    LeaseOutput::Claim => {
                        let won = etcd.owner.is_none() && etcd.expiry.contains_key(&lease);
                        if won {
                            let h = Holder {
                                name: format!("m{}", i + 1),
                                lease,
                            };
                            etcd.owner = Some(h.clone());
                            for (j, m) in ms.iter_mut().enumerate() {
                                if j != i && alive[j] {
                                    m.handle(now, Seen::Owner(Some(h.clone())));
                                }
                            }
                        }
                        ms[i].handle(now, Seen::Claimed { won });
                    }
                    LeaseOutput::Resign
                        if etcd.owner.as_ref().is_some_and(|h| h.lease == lease) =>
                    {
                        etcd.owner = None;
                        for (j, m) in ms.iter_mut().enumerate() {
                            if alive[j] {
                                m.handle(now, Seen::Owner(None));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        // A killed member's address would stay with it; the model counts only the living.
        let holders = (0..3).filter(|&i| alive[i] && ms[i].is_owner()).count();
        assert!(holders <= 1, "two owners at {:?}", now - etcd.t0);
    }
    (ms, took)
}

#[test]
fn three_members_elect_the_best_ranked_one_once() {
    let (ms, took) = run(None, Duration::from_secs(5));
    let owners: Vec<&str> = ms
        .iter()
        .filter(|m| m.is_owner())
        .map(|m| m.config().node.as_str())
        .collect();
    assert_eq!(owners, ["m1"]);
    assert_eq!(took.len(), 1, "the address moved only once");
    for m in &ms {
        assert_eq!(m.view(Instant::now()).owner.as_deref(), Some("m1"));
        assert_eq!(m.metrics().members, 3);
    }
}

#[test]
fn a_silent_owner_death_moves_the_address_to_the_next_within_the_ttl_and_a_second() {
    let death = Duration::from_secs(2);
    let (ms, took) = run(Some((0, death)), Duration::from_secs(6));
    assert!(ms[1].is_owner(), "m2 ranks next");
    assert!(!ms[2].is_owner());
    let moved = *took.last().expect("a takeover") - *took.first().expect("the first");
    // The first take happens within the first step or two; the move after the death.
    let after = moved.saturating_sub(death);
    assert!(after <= TTL + Duration::from_secs(1), "took {after:?}");
    assert!(after >= TTL - Duration::from_millis(250), "took {after:?}");
    assert_eq!(ms[2].metrics().members, 2);
}
