//! 0-RTT resumption: tickets, the first flight carrying sessions, the strike register, the
//! fallback to a full handshake, and the state that survives a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use busway_proto::{Config, Event, ProtoError, Resumption, Ticket, Trust};

use crate::harness::{Pair, Who};
use crate::trust::{book, established, exchange, secret_config, token_config};

/// A node's resumption state on a clock the test moves.
fn resumption(capacity: usize) -> (Arc<Resumption>, Arc<AtomicU64>) {
    let t = Arc::new(AtomicU64::new(2_000_000_000));
    let c = t.clone();
    let r = Resumption::new(Duration::from_secs(600), capacity).with_clock(Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(c.load(Ordering::Relaxed))
    }));
    (Arc::new(r), t)
}

fn acceptor(r: &Arc<Resumption>) -> Config {
    Config {
        resumption: Some(r.clone()),
        tokens: Some(book()),
        ..secret_config("egress")
    }
}

fn ticket_of(events: &[Event]) -> Ticket {
    events
        .iter()
        .find_map(|e| match e {
            Event::Ticket(t) => Some(t.clone()),
            _ => None,
        })
        .expect("a ticket")
}

/// A full handshake that earns a ticket.
fn earn(ci: Config, r: &Arc<Resumption>) -> Ticket {
    let mut p = Pair::new(ci, acceptor(r));
    p.drive();
    assert!(p.i.conn.is_established() && p.a.conn.is_established());
    let t = ticket_of(&p.i.events);
    assert_eq!(t.lifetime, Duration::from_secs(600));
    assert_eq!(t.peer.node, "egress");
    t
}

fn resuming(ci: Config, t: &Ticket) -> Config {
    Config {
        ticket: Some(t.clone()),
        ..ci
    }
}

fn opened(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Opened { .. }))
        .count()
}

#[test]
fn the_first_flight_carries_open_and_data() {
    let (r, _) = resumption(10);
    let t = earn(secret_config("ingress"), &r);
    let mut p = Pair::new(resuming(secret_config("ingress"), &t), acceptor(&r));
    // Before anything was sent: the session rides the first flight.
    let id = p.i.open("echo");
    assert_eq!(p.i.send(id, b"0-rtt bytes"), 11);
    assert!(p.step(Who::I));
    assert_eq!(
        established(&p.a.events),
        Some(("ingress".into(), Trust::Secret, true))
    );
    assert_eq!(opened(&p.a.events), 1);
    assert_eq!(p.a.received(id).0, b"0-rtt bytes");
    // The answer completes the initiator's side, with a fresh ticket.
    p.a.send(id, b"reply");
    assert!(p.step(Who::A));
    assert_eq!(
        established(&p.i.events),
        Some(("egress".into(), Trust::Secret, true))
    );
    assert_eq!(p.i.received(id).0, b"reply");
    let fresh = ticket_of(&p.i.events);
    assert_ne!(fresh.ticket, t.ticket);
    assert_ne!(fresh.secret, t.secret);
    exchange(&mut p);
    // Streams opened early get the acceptor's full window once it answered.
    let big = vec![7u8; 200 * 1024];
    p.transfer(Who::I, id, &big, true);
    assert_eq!(p.a.received(id).0.len(), 11 + big.len());
    assert_eq!(r.used_tickets(), 1);
}

#[test]
fn a_ticket_is_accepted_once() {
    let (r, _) = resumption(10);
    let t = earn(secret_config("ingress"), &r);
    let mut first = Pair::new(resuming(secret_config("ingress"), &t), acceptor(&r));
    let id = first.i.open("echo");
    first.i.send(id, b"once");
    first.drive();
    assert_eq!(first.a.received(id).0, b"once");
    let recorded = first.i.sent_log.clone();

    // The recorded first flight, replayed to the same node: refused, nothing delivered.
    let mut replay = Pair::new(secret_config("x"), acceptor(&r));
    assert_eq!(
        replay.inject_bytes(Who::A, &recorded),
        Err(ProtoError::Handshake("replay"))
    );
    assert_eq!(opened(&replay.a.events), 0);
    assert!(!replay.a.conn.is_established());

    // The same ticket in a new first flight: refused too, and the initiator hears why.
    let mut again = Pair::new(resuming(secret_config("ingress"), &t), acceptor(&r));
    let id = again.i.open("echo");
    again.i.send(id, b"twice");
    again.drive();
    assert_eq!(again.a.error, Some(ProtoError::Handshake("replay")));
    assert_eq!(again.i.error, Some(ProtoError::Handshake("replay")));
    assert_eq!(opened(&again.a.events), 0);
}

/// Resumes with `t` where the acceptor refuses it for `why`; the sessions opened early still
/// arrive, over a full handshake on the same connection.
fn falls_back(ci: Config, t: &Ticket, r: &Arc<Resumption>, why: &str) {
    let mut p = Pair::new(resuming(ci, t), acceptor(r));
    let ids: Vec<u64> = (0..3).map(|_| p.i.open("echo")).collect();
    for &id in &ids {
        p.i.send(id, b"queued before the handshake");
    }
    p.drive();
    assert!(p.i.error.is_none() && p.a.error.is_none(), "{why}");
    let (_, _, resumed) = established(&p.a.events).expect(why);
    assert!(!resumed, "{why}");
    assert_eq!(opened(&p.a.events), 3, "{why}");
    for id in ids {
        assert_eq!(p.a.received(id).0, b"queued before the handshake", "{why}");
    }
    assert!(!established(&p.i.events).unwrap().2);
    exchange(&mut p);
}

#[test]
fn a_refused_ticket_falls_back_to_a_full_handshake() {
    let (r, clock) = resumption(10);
    let t = earn(secret_config("ingress"), &r);
    clock.fetch_add(601, Ordering::Relaxed);
    falls_back(secret_config("ingress"), &t, &r, "expired");

    // After a restart without saved state the ticket key is new.
    let (r, _) = resumption(10);
    let t = earn(secret_config("ingress"), &r);
    let (restarted, _) = resumption(10);
    falls_back(secret_config("ingress"), &t, &restarted, "unknown key");

    // The secret it was earned with was rotated out.
    let (r, _) = resumption(10);
    let old = Config {
        secret: Some(crate::trust::OLD.to_vec()),
        accepted: vec![crate::trust::SECRET.to_vec()],
        ..secret_config("ingress")
    };
    let rotating = Config {
        accepted: vec![crate::trust::OLD.to_vec()],
        ..acceptor(&r)
    };
    let mut p = Pair::new(old.clone(), rotating);
    p.drive();
    let t = ticket_of(&p.i.events);
    let new_only = Config {
        secret: Some(crate::trust::SECRET.to_vec()),
        ..old
    };
    falls_back(new_only, &t, &r, "secret rotated out");
}

#[test]
fn a_full_register_refuses_resumption_not_the_transport() {
    let (r, clock) = resumption(1);
    let a = earn(secret_config("ingress"), &r);
    let b = earn(secret_config("ingress"), &r);
    let mut p = Pair::new(resuming(secret_config("ingress"), &a), acceptor(&r));
    p.drive();
    assert!(established(&p.a.events).unwrap().2);
    falls_back(secret_config("ingress"), &b, &r, "register full");
    assert_eq!(r.used_tickets(), 1);
    // Once the used ticket expired its id is forgotten and there is room again.
    clock.fetch_add(601, Ordering::Relaxed);
    let c = earn(secret_config("ingress"), &r);
    let mut p = Pair::new(resuming(secret_config("ingress"), &c), acceptor(&r));
    p.drive();
    assert!(established(&p.a.events).unwrap().2);
    assert_eq!(r.used_tickets(), 1);
}

#[test]
fn key_and_register_survive_a_restart() {
    let (r, clock) = resumption(10);
    let used = earn(secret_config("ingress"), &r);
    let unused = earn(secret_config("ingress"), &r);
    let mut p = Pair::new(resuming(secret_config("ingress"), &used), acceptor(&r));
    p.drive();
    assert!(established(&p.a.events).unwrap().2);

    let saved = r.to_bytes();
    let c = clock.clone();
    let restarted = Arc::new(Resumption::from_bytes(&saved).unwrap().with_clock(Arc::new(
        move || UNIX_EPOCH + Duration::from_secs(c.load(Ordering::Relaxed)),
    )));
    assert_eq!(restarted.used_tickets(), 1);
    // A ticket issued before the restart still resumes...
    let mut p = Pair::new(
        resuming(secret_config("ingress"), &unused),
        acceptor(&restarted),
    );
    p.drive();
    assert!(established(&p.a.events).unwrap().2);
    // ...and one used before it is still used.
    let mut p = Pair::new(
        resuming(secret_config("ingress"), &used),
        acceptor(&restarted),
    );
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("replay")));
}

#[test]
fn a_token_ticket_resumes_as_the_token() {
    let (r, _) = resumption(10);
    let t = earn(token_config("whoever", "tok-1"), &r);
    let mut p = Pair::new(resuming(token_config("whoever", "tok-1"), &t), acceptor(&r));
    p.drive();
    let (node, trust, resumed) = established(&p.a.events).unwrap();
    assert!(resumed);
    assert_eq!(node, "issued-name");
    assert_eq!(
        trust,
        Trust::Token {
            id: "tok-1".into(),
            node: "issued-name".into()
        }
    );
    // Revoked: the ticket stops working with it, and the full handshake fails with `token`.
    let t = ticket_of(&p.i.events);
    let revoked = Config {
        tokens: None,
        ..acceptor(&r)
    };
    let mut p = Pair::new(resuming(token_config("whoever", "tok-1"), &t), revoked);
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("token")));
}

#[test]
fn no_ticket_without_a_proof() {
    let (r, _) = resumption(10);
    let anon = Config {
        anonymous: true,
        ..acceptor(&r)
    };
    let mut p = Pair::new(crate::harness::config("anon"), anon);
    p.drive();
    assert!(p.i.conn.is_established());
    assert!(!p.i.events.iter().any(|e| matches!(e, Event::Ticket(_))));
}

#[test]
fn under_tls_resumption_and_its_fallback_work_too() {
    let bound = |c: Config| Config {
        channel_binding: Some([9; 32]),
        ..c
    };
    let (r, clock) = resumption(10);
    let mut full = Pair::new(bound(secret_config("ingress")), bound(acceptor(&r)));
    full.drive();
    let t = ticket_of(&full.i.events);
    let mut p = Pair::new(
        resuming(bound(secret_config("ingress")), &t),
        bound(acceptor(&r)),
    );
    let id = p.i.open("echo");
    p.i.send(id, b"early under tls");
    p.step(Who::I);
    assert!(established(&p.a.events).unwrap().2);
    assert_eq!(p.a.received(id).0, b"early under tls");
    p.drive();
    let t = ticket_of(&p.i.events);
    // Refused (expired): the plain 0-RTT frames are skipped, then sent again after the Auth.
    clock.fetch_add(601, Ordering::Relaxed);
    let mut p = Pair::new(
        resuming(bound(secret_config("ingress")), &t),
        bound(acceptor(&r)),
    );
    let id = p.i.open("echo");
    p.i.send(id, b"early under tls");
    p.drive();
    assert!(p.a.error.is_none(), "{:?}", p.a.error);
    assert!(!established(&p.a.events).unwrap().2);
    assert_eq!(opened(&p.a.events), 1);
    assert_eq!(p.a.received(id).0, b"early under tls");
}
