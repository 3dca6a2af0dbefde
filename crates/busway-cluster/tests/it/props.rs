//! Property tests of the wire: every message round-trips; no byte string panics the decoder
//! or the state machine; an altered datagram is never accepted.

use std::time::{Duration, Instant};

use busway_cluster::wire::{
    Advert, Body, Header, HistoryChunk, HistoryRequest, Message, Probe, ProbeReply, Role, Sealer,
    MAX_DATAGRAM,
};
use busway_cluster::{Boot, Cluster, Config, Event, EventKind, History, Snapshot};
use proptest::prelude::*;

use crate::lan::{CLUSTER, EPOCH_MS, SECRET};

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,64}"
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Joining),
        Just(Role::Member),
        Just(Role::Owner),
        Just(Role::Leaving)
    ]
}

fn advert() -> impl Strategy<Value = Advert> {
    (
        role(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        "[a-z]{0,64}",
        "[a-z:/0-9.]{0,200}",
        any::<u32>(),
    )
        .prop_map(
            |(role, priority, events, digest, owner, bus, interval_ms)| Advert {
                role,
                priority,
                events,
                digest,
                owner,
                bus,
                interval_ms,
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    (
        any::<u32>(),
        any::<u64>(),
        name(),
        prop_oneof![
            Just(EventKind::Join),
            Just(EventKind::Leave),
            Just(EventKind::Takeover)
        ],
        name(),
        any::<u32>(),
    )
        .prop_map(|(era, at_ms, recorder, kind, node, incarnation)| Event {
            era,
            at_ms,
            recorder,
            kind,
            node,
            incarnation,
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        advert().prop_map(Body::Advert),
        (name(), any::<u64>()).prop_map(|(target, nonce)| Body::Probe(Probe { target, nonce })),
        (any::<u64>(), advert())
            .prop_map(|(nonce, advert)| Body::ProbeReply(ProbeReply { nonce, advert })),
        (any::<u32>(), proptest::option::of(event()))
            .prop_map(|(id, after)| Body::HistoryRequest(HistoryRequest { id, after })),
        (
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec(event(), 0..6)
        )
            .prop_map(|(id, part, last, more, total, digest, events)| {
                Body::History(HistoryChunk {
                    id,
                    part,
                    last,
                    more,
                    total,
                    digest,
                    events,
                })
            }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (name(), any::<u32>(), any::<u64>(), any::<u32>(), body()).prop_map(
        |(node, incarnation, seq, era, body)| Message {
            header: Header {
                cluster: CLUSTER.into(),
                node,
                incarnation,
                seq,
                era,
            },
            body,
        },
    )
}

fn member() -> Cluster {
    let boot = Boot {
        now: Instant::now(),
        unix_ms: EPOCH_MS,
        address_present: false,
    };
    Cluster::new(Config::new(CLUSTER, "me", SECRET), History::new(), boot).unwrap()
}

proptest! {
    #[test]
    fn messages_round_trip(m in message()) {
        let s = Sealer::new(CLUSTER, SECRET);
        let d = s.seal(&m);
        prop_assert!(d.len() <= MAX_DATAGRAM);
        prop_assert_eq!(s.open(&d), Ok(m));
    }

    #[test]
    fn an_altered_datagram_is_refused(m in message(), at in any::<prop::sample::Index>(), flip in 1..=255u8) {
        let s = Sealer::new(CLUSTER, SECRET);
        let mut d = s.seal(&m);
        let i = at.index(d.len());
        d[i] ^= flip;
        prop_assert!(s.open(&d).is_err());
    }

    #[test]
    fn any_bytes_are_survived(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let s = Sealer::new(CLUSTER, SECRET);
        let _ = s.open(&bytes);
        let _ = Snapshot::from_bytes(&bytes);
        let mut c = member();
        let now = Instant::now();
        c.handle_datagram(now, "198.18.0.9:7946".parse().unwrap(), &bytes);
        c.handle_timeout(now + Duration::from_secs(1));
        while c.poll_output().is_some() {}
    }

    /// Valid, signed messages in any order and any content do not panic a member or stall
    /// its clock.
    #[test]
    fn signed_nonsense_is_survived(ms in proptest::collection::vec(message(), 1..30)) {
        let s = Sealer::new(CLUSTER, SECRET);
        let mut c = member();
        let mut now = Instant::now();
        for m in &ms {
            c.handle_datagram(now, "198.18.0.9:7946".parse().unwrap(), &s.seal(m));
            now += Duration::from_millis(37);
            c.handle_timeout(now);
            prop_assert!(c.poll_timeout().is_some_and(|t| t > now));
            while c.poll_output().is_some() {}
        }
    }

    #[test]
    fn snapshots_round_trip(events in proptest::collection::vec(event(), 0..40), inc in any::<u32>()) {
        let mut history = History::new();
        history.merge(events);
        let s = Snapshot { incarnation: inc, history };
        prop_assert_eq!(Snapshot::from_bytes(&s.to_bytes()), Ok(s));
    }
}
