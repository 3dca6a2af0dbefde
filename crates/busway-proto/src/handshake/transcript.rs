//! The handshake transcript: a SHA-256 over every field either side sent, in order.
//!
//! Every key and every proof of the handshake is derived from a snapshot of it, so changing,
//! adding or dropping any field of Hello, Challenge, Auth or Accept — or running the handshake
//! on another TLS connection, whose channel binding starts the hash — changes every key after
//! that point and the peer's proof fails. Fields are hashed in a canonical form, not as the
//! protobuf bytes they arrived in (protobuf does not fix the order of map entries or of fields,
//! so two honest encoders could disagree): `u8 field | u32 BE length | bytes`, each message
//! opened by its record byte. docs/PROTOCOL.md, 3.3, lists them.

use ring::digest::{Context, SHA256};

use crate::frame::{Accept, Auth, Hello};

/// Starts every transcript: the protocol and its version.
const LABEL: &[u8] = b"busway/3 transcript";

/// Record bytes that open each message in the hash.
const HELLO: u8 = 1;
const CHALLENGE: u8 = 2;
const AUTH: u8 = 3;
const ACCEPT: u8 = 4;
/// The sealed (or clear) identity of a message, hashed after the fields its key depends on.
const INFO: u8 = 5;

/// The running hash. Cheap to snapshot: the acceptor keeps one of these, and no secret, between
/// its Challenge and the initiator's proof.
#[derive(Clone)]
pub(crate) struct Transcript {
    hash: Context,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transcript")
    }
}

impl Transcript {
    /// A fresh transcript, bound to the TLS connection underneath when there is one.
    pub fn new(channel_binding: Option<&[u8; 32]>) -> Transcript {
        let mut t = Transcript {
            hash: Context::new(&SHA256),
        };
        t.hash.update(LABEL);
        match channel_binding {
            None => t.field(0, &[]),
            Some(b) => t.field(0, b),
        }
        t
    }

    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.hash.update(&[tag]);
        // Fields are capped by the frame size, far below u32::MAX.
        self.hash.update(&(bytes.len() as u32).to_be_bytes());
        self.hash.update(bytes);
    }

    /// Every field of a Hello but its `info`, which is sealed with a key from this snapshot.
    pub fn hello(&mut self, h: &Hello) {
        self.hash.update(&[HELLO]);
        self.field(1, &h.version.to_be_bytes());
        self.field(2, &h.nonce);
        self.field(3, &h.ticket);
        self.field(4, h.token_id.as_bytes());
        self.field(6, &[u8::from(h.eager)]);
    }

    pub fn challenge(&mut self, nonce: &[u8]) {
        self.hash.update(&[CHALLENGE]);
        self.field(1, nonce);
    }

    /// An Auth's fields before its `info`.
    pub fn auth(&mut self, a: &Auth) {
        self.hash.update(&[AUTH]);
        self.field(2, &[u8::from(a.sealed)]);
    }

    /// An Accept's fields before its `info`.
    pub fn accept(&mut self, a: &Accept) {
        self.hash.update(&[ACCEPT]);
        self.field(1, &a.nonce);
        self.field(3, &[u8::from(a.sealed)]);
    }

    /// The `info` of the message hashed last, exactly as sent (ciphertext when sealed).
    pub fn info(&mut self, info: &[u8]) {
        self.hash.update(&[INFO]);
        self.field(1, info);
    }

    /// The hash so far; the transcript goes on.
    pub fn snapshot(&self) -> [u8; 32] {
        let d = self.hash.clone().finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn hello() -> Hello {
        Hello {
            version: 3,
            nonce: Bytes::from_static(&[1; 32]),
            ..Hello::default()
        }
    }

    #[test]
    fn every_hello_field_and_the_binding_count() {
        let base = {
            let mut t = Transcript::new(None);
            t.hello(&hello());
            t.snapshot()
        };
        let variants = [
            Hello {
                version: 4,
                ..hello()
            },
            Hello {
                nonce: Bytes::from_static(&[2; 32]),
                ..hello()
            },
            Hello {
                ticket: Bytes::from_static(b"t"),
                ..hello()
            },
            Hello {
                token_id: "t".into(),
                ..hello()
            },
            Hello {
                eager: true,
                ..hello()
            },
        ];
        for v in variants {
            let mut t = Transcript::new(None);
            t.hello(&v);
            assert_ne!(t.snapshot(), base, "{v:?}");
        }
        let mut bound = Transcript::new(Some(&[0; 32]));
        bound.hello(&hello());
        assert_ne!(bound.snapshot(), base);
    }

    #[test]
    fn lengths_separate_fields() {
        let mut a = Transcript::new(None);
        a.challenge(b"ab");
        a.info(b"c");
        let mut b = Transcript::new(None);
        b.challenge(b"a");
        b.info(b"bc");
        assert_ne!(a.snapshot(), b.snapshot());
    }
}
