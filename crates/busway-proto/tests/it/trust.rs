//! Handshake v2: secrets and their lists, what travels in clear, the transcript binding every
//! field, keyed envelopes, tokens, anonymous peers and TLS channel binding.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use busway_proto::frame::Body;
use busway_proto::{
    decode, encode, Config, DecodeError, Event, Frame, Ping, ProtoError, TokenBook,
    TokenCredential, TokenGrant, Trust, KEYED_VERSION, VERSION,
};
use bytes::{Bytes, BytesMut};

use crate::harness::{config, Pair, Who};

pub const SECRET: &[u8] = b"a shared secret of 32 bytes, ok!";
pub const OLD: &[u8] = b"the old secret, still accepted..";

pub fn secret_config(node: &str) -> Config {
    let mut c = Config {
        secret: Some(SECRET.to_vec()),
        namespace: "ns-marker-zq".into(),
        ..config(node)
    };
    c.labels
        .insert("label-key-zq".into(), "label-value-zq".into());
    c
}

pub fn established(events: &[Event]) -> Option<(String, Trust, bool)> {
    events.iter().find_map(|e| match e {
        Event::Established {
            peer,
            trust,
            resumed,
            ..
        } => Some((peer.node.clone(), trust.clone(), *resumed)),
        _ => None,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sends a little data each way and checks it arrives.
pub fn exchange(p: &mut Pair) {
    let id = p.i.open("echo");
    p.i.send(id, b"ping from the initiator");
    p.drive();
    assert_eq!(p.a.received(id).0, b"ping from the initiator");
    p.a.send(id, b"pong");
    p.drive();
    assert_eq!(p.i.received(id).0, b"pong");
}

#[test]
fn a_secret_handshake_keys_every_envelope_after_it() {
    let mut p = Pair::new(secret_config("node-i-zq"), secret_config("node-a-zq"));
    p.drive();
    assert_eq!(
        established(&p.a.events),
        Some(("node-i-zq".into(), Trust::Secret, false))
    );
    assert_eq!(
        established(&p.i.events),
        Some(("node-a-zq".into(), Trust::Secret, false))
    );
    let peer = p.i.conn.peer().unwrap();
    assert_eq!(peer.namespace, "ns-marker-zq");
    assert_eq!(
        peer.labels.get("label-key-zq").map(String::as_str),
        Some("label-value-zq")
    );
    exchange(&mut p);
    // Both directions now write keyed envelopes.
    for who in [Who::I, Who::A] {
        let peer = p.peer(who);
        let before = peer.sent_log.len();
        peer.conn.go_away("check");
        p.step(who);
        let peer = p.peer(who);
        assert_eq!(peer.sent_log[before], KEYED_VERSION as u8, "{who:?}");
    }
}

#[test]
fn nothing_identifying_travels_in_clear() {
    let mut p = Pair::new(secret_config("node-i-zq"), secret_config("node-a-zq"));
    p.drive();
    exchange(&mut p);
    for log in [&p.i.sent_log, &p.a.sent_log] {
        for marker in [
            &b"node-i-zq"[..],
            b"node-a-zq",
            b"ns-marker-zq",
            b"label-key-zq",
            b"label-value-zq",
        ] {
            assert!(
                !contains(log, marker),
                "{} in clear",
                String::from_utf8_lossy(marker)
            );
        }
    }
}

#[test]
fn secret_lists_rotate_both_ways() {
    // The acceptor already proves the new secret and still accepts the old; the initiator
    // still proves the old one and already accepts the new.
    let ca = Config {
        accepted: vec![OLD.to_vec()],
        ..secret_config("egress")
    };
    let ci = Config {
        secret: Some(OLD.to_vec()),
        accepted: vec![SECRET.to_vec()],
        ..secret_config("ingress")
    };
    let mut p = Pair::new(ci.clone(), ca.clone());
    p.drive();
    assert!(p.i.conn.is_established() && p.a.conn.is_established());
    exchange(&mut p);
    // Each side knows which of its secrets verified the other: the acceptor its old one (the
    // initiator proved OLD), the initiator its new one (the acceptor proved SECRET).
    assert_eq!(p.a.conn.verified_by(), Some(busway_proto::secret_fingerprint(OLD)));
    assert_eq!(p.i.conn.verified_by(), Some(busway_proto::secret_fingerprint(SECRET)));
    assert_ne!(busway_proto::secret_fingerprint(OLD), busway_proto::secret_fingerprint(SECRET));
    // Without the new secret in its list the initiator refuses the acceptor's proof.
    let lagging = Config {
        accepted: Vec::new(),
        ..ci
    };
    let mut p = Pair::new(lagging, ca);
    p.drive();
    assert_eq!(p.i.error, Some(ProtoError::Handshake("auth")));
}

#[test]
fn a_flipped_byte_in_a_data_envelope_fails_with_auth() {
    let mut p = Pair::established_with(secret_config("ingress"), secret_config("egress"));
    let id = p.i.open("echo");
    p.drive();
    p.i.send(id, &[0x42; 3000]);
    p.i.conn.transmit(&mut p.i.wire);
    let n = p.i.wire.len();
    p.i.wire[n - 100] ^= 0x01;
    let bytes = p.i.wire.split();
    let r = p.inject_bytes(Who::A, &bytes);
    assert_eq!(r, Err(ProtoError::Decode(DecodeError::Auth)));
    assert_eq!(r.unwrap_err().reason(), "auth");
    assert!(p.a.received(id).0.is_empty(), "nothing of it delivered");
}

#[test]
fn injected_envelopes_fail_with_auth() {
    // In clear, with a valid CRC.
    let mut p = Pair::established_with(secret_config("ingress"), secret_config("egress"));
    let ping = Frame::new(Body::Ping(Ping { timepoint_us: 1 }));
    assert_eq!(
        p.inject(Who::A, &ping),
        Err(ProtoError::Decode(DecodeError::Auth))
    );
    // A keyed envelope replayed from the same transport.
    let mut p = Pair::established_with(secret_config("ingress"), secret_config("egress"));
    exchange(&mut p);
    let before = p.i.sent_log.len();
    let id = p.i.open("again");
    p.i.send(id, b"x");
    p.step(Who::I);
    let recorded = p.i.sent_log[before..].to_vec();
    assert!(p.a.error.is_none());
    assert_eq!(
        p.inject_bytes(Who::A, &recorded),
        Err(ProtoError::Decode(DecodeError::Auth))
    );
}

#[test]
fn replayed_handshake_bytes_fail_at_a_fresh_acceptor() {
    let mut first = Pair::new(secret_config("ingress"), secret_config("egress"));
    first.drive();
    exchange(&mut first);
    let recorded = first.i.sent_log.clone();
    let mut second = Pair::new(secret_config("ingress"), secret_config("egress"));
    assert_eq!(
        second.inject_bytes(Who::A, &recorded),
        Err(ProtoError::Handshake("auth"))
    );
    assert!(second.a.events.is_empty(), "no stream opened");
}

/// Runs a handshake whose frames `tamper` may change in flight (as seen by the receiver `to`);
/// returns both errors.
fn tampered(
    ci: Config,
    ca: Config,
    mut tamper: impl FnMut(Who, &mut Frame) -> bool,
) -> (Option<ProtoError>, Option<ProtoError>) {
    let mut p = Pair::new(ci, ca);
    let mut changed = false;
    for _ in 0..6 {
        for from in [Who::I, Who::A] {
            let to = if from == Who::I { Who::A } else { Who::I };
            let src = p.peer(from);
            src.conn.transmit(&mut src.wire);
            let mut wire = src.wire.split();
            let mut out = BytesMut::new();
            // Handshake frames travel in plain envelopes: decode them, let `tamper` change
            // one, encode again with a valid CRC. Keyed ones pass unchanged.
            while !wire.is_empty() && wire[0] == VERSION as u8 {
                let mut f = decode(&mut wire).unwrap().unwrap();
                if !changed {
                    changed = tamper(to, &mut f);
                }
                encode(&f, &mut out);
            }
            out.extend_from_slice(&wire);
            if !out.is_empty() {
                let _ = p.inject_bytes(to, &out);
            }
        }
    }
    assert!(changed, "nothing tampered with");
    (p.i.error.clone(), p.a.error.clone())
}

#[test]
fn every_handshake_field_is_bound() {
    let auth = Some(ProtoError::Handshake("auth"));
    type Tamper = Box<dyn Fn(Who, &mut Frame) -> bool>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "hello nonce",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Hello(h)) => {
                    h.nonce = Bytes::from_static(&[9; 32]);
                    true
                }
                _ => false,
            }),
        ),
        (
            "hello ticket (refused, so a full handshake over a changed transcript)",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Hello(h)) => {
                    h.ticket = Bytes::from_static(b"not a ticket");
                    h.info = Bytes::from_static(b"x");
                    true
                }
                _ => false,
            }),
        ),
        (
            "challenge nonce",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Challenge(c)) => {
                    c.nonce = Bytes::from_static(&[9; 32]);
                    true
                }
                _ => false,
            }),
        ),
        (
            "auth sealed flag",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Auth(a)) => {
                    a.sealed = false;
                    true
                }
                _ => false,
            }),
        ),
        (
            "auth info",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Auth(a)) => {
                    let mut v = a.info.to_vec();
                    v[3] ^= 1;
                    a.info = v.into();
                    true
                }
                _ => false,
            }),
        ),
        (
            "accept info",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Accept(a)) => {
                    let mut v = a.info.to_vec();
                    v[0] ^= 1;
                    a.info = v.into();
                    true
                }
                _ => false,
            }),
        ),
        (
            "accept nonce",
            Box::new(|_, f: &mut Frame| match &mut f.body {
                Some(Body::Accept(a)) => {
                    a.nonce = Bytes::from_static(&[1; 32]);
                    true
                }
                _ => false,
            }),
        ),
    ];
    let resumption = Arc::new(busway_proto::Resumption::new(Duration::from_secs(60), 10));
    let ca = Config {
        resumption: Some(resumption),
        ..secret_config("egress")
    };
    for (name, tamper) in cases {
        let (ei, ea) = tampered(secret_config("ingress"), ca.clone(), tamper);
        assert!(
            ei == auth || ea == auth || ei == Some(ProtoError::Handshake("protocol")),
            "{name}: {ei:?} {ea:?}"
        );
        assert!(ei.is_some() || ea.is_some(), "{name}");
    }
    // The version is checked before anything else.
    let (_, ea) = tampered(secret_config("ingress"), ca.clone(), |_, f| {
        match &mut f.body {
            Some(Body::Hello(h)) => {
                h.version += 1;
                true
            }
            _ => false,
        }
    });
    assert_eq!(ea, Some(ProtoError::Handshake("version")));
    // A token id added in flight names a token the acceptor does not know.
    let (_, ea) = tampered(secret_config("ingress"), ca, |_, f| match &mut f.body {
        Some(Body::Hello(h)) => {
            h.token_id = "t".into();
            true
        }
        _ => false,
    });
    assert_eq!(ea, Some(ProtoError::Handshake("token")));
}

struct Book(HashMap<String, TokenGrant>);

impl TokenBook for Book {
    fn find(&self, id: &str) -> Option<TokenGrant> {
        self.0.get(id).cloned()
    }
}

pub fn book() -> Arc<dyn TokenBook> {
    let grant = TokenGrant {
        secret: b"the token's own secret, 32 bytes".to_vec(),
        node: "issued-name".into(),
        services: vec!["chat".into()],
        expires_at: SystemTime::now() + Duration::from_secs(3600),
    };
    Arc::new(Book(HashMap::from([("tok-1".to_string(), grant)])))
}

pub fn token_config(node: &str, id: &str) -> Config {
    Config {
        token: Some(TokenCredential {
            id: id.into(),
            secret: b"the token's own secret, 32 bytes".to_vec(),
        }),
        ..config(node)
    }
}

#[test]
fn a_token_peer_is_known_by_the_token_name() {
    let ca = Config {
        tokens: Some(book()),
        ..secret_config("egress")
    };
    let mut p = Pair::new(token_config("claims-to-be-egress", "tok-1"), ca);
    p.drive();
    assert_eq!(
        established(&p.a.events),
        Some((
            "issued-name".into(),
            Trust::Token {
                id: "tok-1".into(),
                node: "issued-name".into()
            },
            false
        ))
    );
    let (node, trust, _) = established(&p.i.events).unwrap();
    assert_eq!(node, "egress");
    assert!(matches!(trust, Trust::Token { id, .. } if id == "tok-1"));
    exchange(&mut p);
    // The token's secret keys the envelopes too.
    assert_eq!(
        p.inject(Who::A, &Frame::new(Body::Ping(Ping { timepoint_us: 1 }))),
        Err(ProtoError::Decode(DecodeError::Auth))
    );
}

#[test]
fn an_unknown_or_wrong_token_is_refused() {
    let ca = Config {
        tokens: Some(book()),
        ..secret_config("egress")
    };
    let mut p = Pair::new(token_config("ingress", "tok-2"), ca.clone());
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("token")));
    assert_eq!(p.i.error, Some(ProtoError::Handshake("token")));
    // The right id with another secret.
    let mut wrong = token_config("ingress", "tok-1");
    wrong.token.as_mut().unwrap().secret = SECRET.to_vec();
    let mut p = Pair::new(wrong, ca);
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("auth")));
    // No book at all.
    let mut p = Pair::new(token_config("ingress", "tok-1"), secret_config("egress"));
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("token")));
}

#[test]
fn anonymous_peers_only_with_anonymous_and_they_learn_no_labels() {
    let mut p = Pair::new(config("anon"), secret_config("egress"));
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("auth")));

    let ca = Config {
        anonymous: true,
        ..secret_config("egress")
    };
    let mut p = Pair::new(config("anon"), ca.clone());
    p.drive();
    assert_eq!(
        established(&p.a.events),
        Some(("anon".into(), Trust::Anonymous, false))
    );
    let seen = p.i.conn.peer().unwrap();
    assert_eq!(seen.node, "egress");
    assert!(seen.namespace.is_empty() && seen.labels.is_empty());
    for marker in [&b"ns-marker-zq"[..], b"label-key-zq"] {
        assert!(!contains(&p.a.sent_log, marker));
    }
    exchange(&mut p);
    // A secret holder is still a secret peer there.
    let mut p = Pair::new(secret_config("ingress"), ca);
    p.drive();
    assert_eq!(
        established(&p.a.events),
        Some(("ingress".into(), Trust::Secret, false))
    );
}

#[test]
fn channel_binding_sends_auth_at_once_and_keeps_the_crc() {
    let bind = |c: Config, b: u8| Config {
        channel_binding: Some([b; 32]),
        ..c
    };
    let mut p = Pair::new(
        bind(secret_config("ingress"), 7),
        bind(secret_config("egress"), 7),
    );
    let id = p.i.open("echo");
    p.i.send(id, b"first flight");
    // One flight: Hello, Auth, Open and Data; the acceptor is established by it.
    p.step(Who::I);
    assert!(p.a.conn.is_established());
    assert_eq!(p.a.received(id).0, b"first flight");
    p.step(Who::A);
    assert!(p.i.conn.is_established());
    exchange(&mut p);
    // TLS protects the envelopes: they keep the CRC.
    let before = p.a.sent_log.len();
    p.a.send(id, b"more");
    p.step(Who::A);
    assert_eq!(p.a.sent_log[before], VERSION as u8);
    // Another TLS connection (another exporter) does not verify.
    let mut p = Pair::new(
        bind(secret_config("ingress"), 7),
        bind(secret_config("egress"), 8),
    );
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("auth")));
    // Nor does a binding on one side only.
    let mut p = Pair::new(bind(secret_config("ingress"), 7), secret_config("egress"));
    p.drive();
    assert_eq!(p.a.error, Some(ProtoError::Handshake("auth")));
}
