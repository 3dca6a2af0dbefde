//! The handshake's pure parts: building Hello/Welcome, checking what the peer sent, and the
//! HMAC proofs.
//!
//! Each side proves the shared secret with HMAC-SHA256 over a transcript holding both nonces and
//! both node names. The acceptor's nonce is fresh per handshake, so an Auth recorded from an
//! earlier handshake does not verify; the role label keeps the acceptor's proof from being
//! reflected back as the initiator's.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Config, PeerInfo};
use crate::error::ProtoError;
use crate::frame::{Hello, Welcome};
use crate::MAX_FRAME_LEN;

/// Shortest nonce accepted: 128 bits is enough to never repeat.
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce accepted, so the transcript stays small.
pub const MAX_NONCE_LEN: usize = 64;
/// Smallest `max_frame` a peer may announce: below it an Open frame might not fit.
pub const MIN_MAX_FRAME: u32 = 1024;
/// Version carried in Hello/Welcome (the envelope has its own, [`crate::VERSION`]).
pub const HANDSHAKE_VERSION: u32 = 1;
/// Smallest per-stream window a peer may grant. A peer granting nothing would hang every
/// session on the transport while still answering pings; one that grants crumbs would make
/// every byte a frame.
pub const MIN_STREAM_WINDOW: u32 = 16 * 1024;
/// Smallest transport window a peer may grant: at least one full stream window.
pub const MIN_CONN_WINDOW: u32 = 64 * 1024;

/// Whose proof: the label that starts the transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prover {
    Acceptor,
    Initiator,
}

impl Prover {
    fn label(self) -> &'static [u8] {
        match self {
            Prover::Acceptor => b"busway/1 acceptor",
            Prover::Initiator => b"busway/1 initiator",
        }
    }
}

/// The values both proofs cover.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transcript<'a> {
    pub nonce_i: &'a [u8],
    pub nonce_a: &'a [u8],
    pub node_i: &'a str,
    pub node_a: &'a str,
}

impl Transcript<'_> {
    /// `label || len(nonce_i) nonce_i || len(nonce_a) nonce_a || len(node_i) node_i ||
    /// len(node_a) node_a`, lengths as u32 big endian so no two transcripts share bytes.
    fn mac(&self, secret: &[u8], prover: Prover) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        mac.update(prover.label());
        for field in [
            self.nonce_i,
            self.nonce_a,
            self.node_i.as_bytes(),
            self.node_a.as_bytes(),
        ] {
            // Fields are capped by the frame size, far below u32::MAX.
            mac.update(&(field.len() as u32).to_be_bytes());
            mac.update(field);
        }
        Some(mac)
    }

    /// Our proof; empty without a secret.
    pub fn prove(&self, secret: Option<&[u8]>, prover: Prover) -> Bytes {
        match secret.and_then(|s| self.mac(s, prover)) {
            Some(mac) => Bytes::from(mac.finalize().into_bytes().to_vec()),
            None => Bytes::new(),
        }
    }

    /// Checks the peer's proof in constant time. Without a secret only an empty proof passes:
    /// a peer proving a secret we lack is misconfigured, and carrying on would hide it.
    pub fn verify(
        &self,
        secret: Option<&[u8]>,
        prover: Prover,
        proof: &[u8],
    ) -> Result<(), ProtoError> {
        let ok = match secret {
            None => proof.is_empty(),
            Some(s) => self
                .mac(s, prover)
                .is_some_and(|mac| !proof.is_empty() && mac.verify_slice(proof).is_ok()),
        };
        if ok {
            Ok(())
        } else {
            Err(ProtoError::Handshake("auth"))
        }
    }
}

impl Transcript<'_> {
    /// Checks the peer's proof against every secret `config` accepts: its own, then the
    /// others of its list. The error is the one for its own secret.
    pub fn verify_any(
        &self,
        config: &Config,
        prover: Prover,
        proof: &[u8],
    ) -> Result<(), ProtoError> {
        let own = self.verify(config.secret.as_deref(), prover, proof);
        if own.is_err()
            && config.secret.is_some()
            && config
                .accepted
                .iter()
                .any(|s| self.verify(Some(s), prover, proof).is_ok())
        {
            return Ok(());
        }
        own
    }
}

/// The initiator's first frame.
pub(crate) fn hello(config: &Config, nonce: &[u8]) -> Hello {
    Hello {
        version: HANDSHAKE_VERSION,
        node: config.node.clone(),
        namespace: config.namespace.clone(),
        labels: to_hash_map(&config.labels),
        capabilities: Vec::new(),
        max_frame: MAX_FRAME_LEN as u32,
        stream_window: config.stream_window,
        conn_window: config.conn_window,
        nonce: Bytes::copy_from_slice(nonce),
    }
}

/// The acceptor's answer.
pub(crate) fn welcome(config: &Config, nonce: &[u8], proof: Bytes) -> Welcome {
    Welcome::from_hello(hello(config, nonce), proof)
}

/// Validates the peer's Hello and describes the peer.
pub(crate) fn accept_hello(h: &Hello) -> Result<PeerInfo, ProtoError> {
    check(
        h.version,
        &h.nonce,
        h.max_frame,
        h.stream_window,
        h.conn_window,
    )?;
    Ok(PeerInfo {
        node: h.node.clone(),
        namespace: h.namespace.clone(),
        labels: to_btree_map(&h.labels),
        capabilities: h.capabilities.clone(),
        max_frame: h.max_frame,
        stream_window: h.stream_window,
        conn_window: h.conn_window,
    })
}

/// Validates the peer's Welcome (except its proof) and describes the peer.
pub(crate) fn accept_welcome(w: &Welcome) -> Result<PeerInfo, ProtoError> {
    check(
        w.version,
        &w.nonce,
        w.max_frame,
        w.stream_window,
        w.conn_window,
    )?;
    Ok(PeerInfo {
        node: w.node.clone(),
        namespace: w.namespace.clone(),
        labels: to_btree_map(&w.labels),
        capabilities: w.capabilities.clone(),
        max_frame: w.max_frame,
        stream_window: w.stream_window,
        conn_window: w.conn_window,
    })
}

fn check(
    version: u32,
    nonce: &[u8],
    max_frame: u32,
    stream_window: u32,
    conn_window: u32,
) -> Result<(), ProtoError> {
    if version != HANDSHAKE_VERSION {
        return Err(ProtoError::Handshake("version"));
    }
    let sound = (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        && max_frame >= MIN_MAX_FRAME
        && stream_window >= MIN_STREAM_WINDOW
        && conn_window >= MIN_CONN_WINDOW.max(stream_window);
    if !sound {
        return Err(ProtoError::Handshake("protocol"));
    }
    Ok(())
}

fn to_hash_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn to_btree_map(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_CONN: u32 = crate::DEFAULT_CONN_WINDOW;

    const T: Transcript<'static> = Transcript {
        nonce_i: &[1; 32],
        nonce_a: &[2; 32],
        node_i: "a",
        node_a: "b",
    };

    #[test]
    fn proof_verifies_only_with_same_secret_role_and_transcript() {
        let p = T.prove(Some(b"s3cret"), Prover::Acceptor);
        assert_eq!(p.len(), 32);
        assert!(T.verify(Some(b"s3cret"), Prover::Acceptor, &p).is_ok());
        assert!(T.verify(Some(b"other"), Prover::Acceptor, &p).is_err());
        assert!(T.verify(Some(b"s3cret"), Prover::Initiator, &p).is_err());
        let fresh = Transcript {
            nonce_a: &[3; 32],
            ..T
        };
        assert!(fresh.verify(Some(b"s3cret"), Prover::Acceptor, &p).is_err());
        assert!(T
            .verify(Some(b"s3cret"), Prover::Acceptor, &p[..16])
            .is_err());
    }

    #[test]
    fn any_listed_secret_verifies_and_only_the_first_is_proved() {
        let rotating = Config {
            secret: Some(b"new-secret".to_vec()),
            accepted: vec![b"old-secret".to_vec()],
            ..Config::default()
        };
        let old = T.prove(Some(b"old-secret"), Prover::Initiator);
        let new = T.prove(Some(b"new-secret"), Prover::Initiator);
        let other = T.prove(Some(b"other-secret"), Prover::Initiator);
        assert!(T.verify_any(&rotating, Prover::Initiator, &old).is_ok());
        assert!(T.verify_any(&rotating, Prover::Initiator, &new).is_ok());
        assert_eq!(
            T.verify_any(&rotating, Prover::Initiator, &other),
            Err(ProtoError::Handshake("auth"))
        );
        // Without a secret of its own a node accepts only an empty proof, list or not.
        let unauthenticated = Config {
            accepted: vec![b"old-secret".to_vec()],
            ..Config::default()
        };
        assert!(T
            .verify_any(&unauthenticated, Prover::Initiator, &old)
            .is_err());
        assert!(T
            .verify_any(&unauthenticated, Prover::Initiator, &[])
            .is_ok());
    }

    #[test]
    fn length_prefixes_separate_fields() {
        let a = Transcript {
            node_i: "ab",
            node_a: "c",
            ..T
        };
        let b = Transcript {
            node_i: "a",
            node_a: "bc",
            ..T
        };
        assert_ne!(
            a.prove(Some(b"k"), Prover::Initiator),
            b.prove(Some(b"k"), Prover::Initiator)
        );
    }

    #[test]
    fn without_secret_only_empty_proof_passes() {
        assert!(T.prove(None, Prover::Initiator).is_empty());
        assert!(T.verify(None, Prover::Initiator, &[]).is_ok());
        assert_eq!(
            T.verify(None, Prover::Initiator, &[0; 32]),
            Err(ProtoError::Handshake("auth"))
        );
        assert_eq!(
            T.verify(Some(b"k"), Prover::Initiator, &[]),
            Err(ProtoError::Handshake("auth"))
        );
    }

    #[test]
    fn hello_checks() {
        let cfg = Config::default();
        let good = hello(&cfg, &[0; 32]);
        assert_eq!(accept_hello(&good).unwrap().namespace, "default");
        let v2 = Hello {
            version: 2,
            ..good.clone()
        };
        assert_eq!(accept_hello(&v2), Err(ProtoError::Handshake("version")));
        for len in [0, 15, 65] {
            let h = hello(&cfg, &vec![0; len]);
            assert_eq!(accept_hello(&h), Err(ProtoError::Handshake("protocol")));
        }
        let tiny = Hello {
            max_frame: 100,
            ..good.clone()
        };
        assert_eq!(accept_hello(&tiny), Err(ProtoError::Handshake("protocol")));
        // A peer that grants no credit (or less per transport than per stream) would hang
        // every session on it: refused at the handshake.
        for (stream_window, conn_window) in [
            (0, DEFAULT_CONN),
            (MIN_STREAM_WINDOW - 1, DEFAULT_CONN),
            (MIN_STREAM_WINDOW, 0),
            (MIN_STREAM_WINDOW, MIN_CONN_WINDOW - 1),
            (1 << 20, 1 << 19),
        ] {
            let stingy = Hello {
                stream_window,
                conn_window,
                ..good.clone()
            };
            assert_eq!(
                accept_hello(&stingy),
                Err(ProtoError::Handshake("protocol")),
                "{stream_window}/{conn_window}"
            );
        }
        let least = Hello {
            stream_window: MIN_STREAM_WINDOW,
            conn_window: MIN_CONN_WINDOW,
            ..good
        };
        assert!(accept_hello(&least).is_ok());
    }
}
