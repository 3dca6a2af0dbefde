//! Arbitrary bytes into the envelope decoder and into both ends of a fresh connection, once
//! unauthenticated and once with everything an acceptor can be asked to check configured: a
//! secret list, anonymous peers, a token book and resumption tickets (so Hellos with tickets
//! and token ids, and Auths with sealed identities, are all parsed).
//!
//! Invariants: every decoded frame consumed bytes; a connection fed garbage either accepts it or
//! fails, and a failure is sticky (every later call reports it again) and leaves only a GoAway
//! naming the reason to send. The seed corpus (written by busway-proto's corpus test) holds
//! valid sessions for each side, so mutations reach the stream logic behind the handshake.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use busway_proto::frame::Body;
use busway_proto::{
    decode, Config, Connection, Frame, Resumption, Side, TokenBook, TokenCredential, TokenGrant,
};
use bytes::BytesMut;

struct Book;

impl TokenBook for Book {
    fn find(&self, id: &str) -> Option<TokenGrant> {
        (id == "t").then(|| TokenGrant {
            secret: b"token secret".to_vec(),
            node: "issued".into(),
            services: Vec::new(),
            expires_at: SystemTime::UNIX_EPOCH,
        })
    }
}

fn guarded() -> Config {
    static RESUMPTION: OnceLock<Arc<Resumption>> = OnceLock::new();
    Config {
        secret: Some(b"a fuzzing secret, 16+ bytes".to_vec()),
        accepted: vec![b"an older secret, 16+ bytes".to_vec()],
        anonymous: true,
        tokens: Some(Arc::new(Book)),
        resumption: Some(
            RESUMPTION
                .get_or_init(|| Arc::new(Resumption::new(Duration::from_secs(60), 64)))
                .clone(),
        ),
        token: Some(TokenCredential {
            id: "t".into(),
            secret: b"token secret".to_vec(),
        }),
        ..Config::default()
    }
}

pub fn run(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut frames = 0usize;
    let mut left = buf.len();
    while let Ok(Some(_)) = decode(&mut buf) {
        frames += 1;
        assert!(buf.len() < left, "a frame that consumed nothing");
        left = buf.len();
    }
    assert!(frames <= data.len());

    let now = Instant::now();
    let configs = [
        (Side::Initiator, Config::default()),
        (Side::Acceptor, Config::default()),
        (Side::Initiator, guarded()),
        (Side::Acceptor, guarded()),
    ];
    for (side, config) in configs {
        let mut conn = Connection::new(side, config, [7; 32], now);
        // Fed in two halves, so partial envelopes are exercised too.
        let mid = data.len() / 2;
        let mut input = BytesMut::from(&data[..mid]);
        let mut failed = conn.handle_input(&mut input, now).err();
        if failed.is_none() {
            input.extend_from_slice(&data[mid..]);
            failed = conn.handle_input(&mut input, now).err();
        }
        while conn.poll_event().is_some() {}
        let _ = conn.handle_timeout(now + Duration::from_secs(1));
        let mut out = Vec::new();
        conn.poll_transmit(&mut out, usize::MAX);
        if let Some(e) = failed {
            assert_eq!(
                conn.handle_input(&mut input, now).err(),
                Some(e.clone()),
                "errors stick"
            );
            let goaway = Frame::new(Body::GoAway(busway_proto::GoAway {
                reason: e.reason().to_owned(),
            }));
            assert!(
                out.len() <= 1 && out.iter().all(|f| *f == goaway),
                "{out:?}"
            );
        }
    }
}
