//! The handshake's pure parts: the limits, what each side says about itself ([`Info`]), and
//! how the acceptor's nonce is made. The transcript is in `transcript.rs`, the keys and the
//! sealing in `seal.rs`; the state machine that runs them is in `establish.rs` (initiator) and
//! `accept.rs` (acceptor). docs/PROTOCOL.md, 3, is the reference.

pub(crate) mod seal;
pub(crate) mod transcript;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{Config, PeerInfo};
use crate::error::ProtoError;
use crate::frame::Info;
use crate::MAX_FRAME_LEN;

/// Shortest nonce accepted: 128 bits is enough to never repeat.
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce accepted, so the transcript stays small.
pub const MAX_NONCE_LEN: usize = 64;
/// Smallest `max_frame` a peer may announce: below it an Open frame might not fit.
pub const MIN_MAX_FRAME: u32 = 1024;
/// Version carried in Hello (the envelope has its own, [`crate::VERSION`]). 2: nothing about
/// a node travels before its peer proved the secret, and the transcript binds every field.
pub const HANDSHAKE_VERSION: u32 = 2;
/// Smallest per-stream window a peer may grant. A peer granting nothing would hang every
/// session on the transport while still answering pings; one that grants crumbs would make
/// every byte a frame. It is also what an initiator may send on a stream before it knows the
/// acceptor's window (pipelined after its Auth, or 0-RTT).
pub const MIN_STREAM_WINDOW: u32 = 16 * 1024;
/// Smallest transport window a peer may grant: at least one full stream window. Also what an
/// initiator may have in flight before it knows the acceptor's window.
pub const MIN_CONN_WINDOW: u32 = 64 * 1024;
/// Longest token id accepted in a Hello.
pub const MAX_TOKEN_ID_LEN: usize = 256;
/// Streams an initiator may open before the acceptor's Accept arrived; more wait for it.
pub const MAX_EARLY_STREAMS: usize = 64;

/// What we say about ourselves. An anonymous peer learns our name and parameters, never our
/// namespace or labels.
pub(crate) fn info(config: &Config, for_anonymous: bool) -> Vec<u8> {
    let (namespace, labels) = if for_anonymous {
        (String::new(), HashMap::new())
    } else {
        (
            config.namespace.clone(),
            config
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    Info {
        node: config.node.clone(),
        namespace,
        labels,
        capabilities: crate::carrier::capabilities(config),
        max_frame: MAX_FRAME_LEN as u32,
        stream_window: config.stream_window,
        conn_window: config.conn_window,
    }
    .encode_to_vec()
}

/// The peer's [`Info`], checked: a peer that grants no credit, or takes frames too small for
/// an Open, fails the handshake.
pub(crate) fn peer_info(bytes: &[u8]) -> Result<PeerInfo, ProtoError> {
    let i = Info::decode(bytes).map_err(|_| ProtoError::Handshake("protocol"))?;
    let sound = i.max_frame >= MIN_MAX_FRAME
        && i.stream_window >= MIN_STREAM_WINDOW
        && i.conn_window >= MIN_CONN_WINDOW.max(i.stream_window);
    if !sound {
        return Err(ProtoError::Handshake("protocol"));
    }
    Ok(PeerInfo {
        node: i.node,
        namespace: i.namespace,
        labels: to_btree_map(&i.labels),
        capabilities: i.capabilities,
        max_frame: i.max_frame,
        stream_window: i.stream_window,
        conn_window: i.conn_window,
    })
}

/// A Hello's version and nonce.
pub(crate) fn check_hello(version: u32, nonce: &[u8]) -> Result<(), ProtoError> {
    if version != HANDSHAKE_VERSION {
        return Err(ProtoError::Handshake("version"));
    }
    check_nonce(nonce)
}

pub(crate) fn check_nonce(nonce: &[u8]) -> Result<(), ProtoError> {
    if (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len()) {
        Ok(())
    } else {
        Err(ProtoError::Handshake("protocol"))
    }
}

pub(crate) fn to_btree_map(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Width of the time bucket in the acceptor's nonce.
const BUCKET: Duration = Duration::from_secs(60);

/// The per-process key of the acceptor's nonces, and the instant buckets count from.
fn cookie_key() -> &'static (hmac::Key, Instant) {
    static KEY: OnceLock<(hmac::Key, Instant)> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        // Without the OS RNG the key is still unknown to a peer only through the connection
        // nonces mixed in below, which the driver draws from its own RNG.
        let _ = SystemRandom::new().fill(&mut k);
        (hmac::Key::new(hmac::HMAC_SHA256, &k), Instant::now())
    })
}

/// The acceptor's nonce: HMAC-SHA256(process cookie key, "busway/3 cookie" | time bucket |
/// the Hello's nonce | the connection's own random bytes).
///
/// One HMAC and no state: a flood of Hellos costs the acceptor nothing it keeps and none of the
/// work that verifying a proof takes (one key derivation and AEAD open per accepted secret),
/// and that work needs the initiator to answer this nonce, a round trip later. The connection
/// bytes make it fresh per connection, so a recorded Auth never matches a new Challenge.
pub(crate) fn acceptor_nonce(nonce_i: &[u8], conn_nonce: &[u8; 32], now: Instant) -> Bytes {
    let (key, epoch) = cookie_key();
    let bucket = now.saturating_duration_since(*epoch).as_secs() / BUCKET.as_secs();
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(b"busway/3 cookie");
    ctx.update(&bucket.to_be_bytes());
    ctx.update(&(nonce_i.len() as u32).to_be_bytes());
    ctx.update(nonce_i);
    ctx.update(conn_nonce);
    Bytes::copy_from_slice(&ctx.sign().as_ref()[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_and_hides_labels_from_anonymous_peers() {
        let mut cfg = Config {
            node: "egress".into(),
            namespace: "prod".into(),
            ..Config::default()
        };
        cfg.labels.insert("zone".into(), "a".into());
        let full = peer_info(&info(&cfg, false)).unwrap();
        assert_eq!(full.namespace, "prod");
        assert_eq!(full.labels.get("zone").map(String::as_str), Some("a"));
        let anon = peer_info(&info(&cfg, true)).unwrap();
        assert_eq!(anon.node, "egress");
        assert!(anon.namespace.is_empty() && anon.labels.is_empty());
    }

    #[test]
    fn stingy_or_tiny_peers_are_refused() {
        let good = Info {
            node: "x".into(),
            max_frame: MAX_FRAME_LEN as u32,
            stream_window: MIN_STREAM_WINDOW,
            conn_window: MIN_CONN_WINDOW,
            ..Info::default()
        };
        assert!(peer_info(&good.encode_to_vec()).is_ok());
        for bad in [
            Info {
                max_frame: 100,
                ..good.clone()
            },
            Info {
                stream_window: MIN_STREAM_WINDOW - 1,
                ..good.clone()
            },
            Info {
                conn_window: MIN_CONN_WINDOW - 1,
                ..good.clone()
            },
            Info {
                stream_window: 1 << 20,
                conn_window: 1 << 19,
                ..good.clone()
            },
        ] {
            assert_eq!(
                peer_info(&bad.encode_to_vec()),
                Err(ProtoError::Handshake("protocol"))
            );
        }
        assert_eq!(
            peer_info(&[0xff, 0xff]),
            Err(ProtoError::Handshake("protocol"))
        );
    }

    #[test]
    fn hello_checks() {
        assert!(check_hello(HANDSHAKE_VERSION, &[0; 32]).is_ok());
        assert_eq!(
            check_hello(1, &[0; 32]),
            Err(ProtoError::Handshake("version"))
        );
        for len in [0, 15, 65] {
            assert_eq!(
                check_hello(HANDSHAKE_VERSION, &vec![0; len]),
                Err(ProtoError::Handshake("protocol"))
            );
        }
    }

    #[test]
    fn acceptor_nonces_are_fresh_per_connection() {
        let now = Instant::now();
        let a = acceptor_nonce(&[1; 32], &[2; 32], now);
        assert_eq!(a, acceptor_nonce(&[1; 32], &[2; 32], now));
        assert_ne!(a, acceptor_nonce(&[1; 32], &[3; 32], now));
        assert_ne!(a, acceptor_nonce(&[9; 32], &[2; 32], now));
        assert_eq!(a.len(), 32);
    }
}
