//! The HMAC-SHA256 tag that makes a datagram a member's word.
//!
//! The key is the cluster secret. Checks run cheapest and most telling first: the size, the
//! parse, the cluster id (a neighbouring cluster on the same group is a configuration mistake
//! worth naming, and its tag could not verify under our secret anyway), then the tag.

use ring::hmac;

use super::{decode_unsigned, encode_unsigned, Malformed, Message, MAX_DATAGRAM};

/// Bytes of the tag at the end of every datagram.
pub const TAG_LEN: usize = 32;

/// Why a datagram was not accepted (before the replay check, which needs the member table).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Malformed(Malformed),
    #[error("from another cluster ({0:?})")]
    Cluster(String),
    #[error("bad signature")]
    Signature,
}

/// Signs and checks the datagrams of one cluster.
pub struct Sealer {
    key: hmac::Key,
    cluster: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Sealer")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(cluster: &str, secret: &[u8]) -> Sealer {
        Sealer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            cluster: cluster.to_owned(),
        }
    }

    /// The datagram for `m`: its bytes and their tag.
    pub fn seal(&self, m: &Message) -> Vec<u8> {
        let mut out = encode_unsigned(m);
        let tag = hmac::sign(&self.key, &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The message in `datagram`, if it is well formed, of this cluster and signed with its
    /// secret.
    pub fn open(&self, datagram: &[u8]) -> Result<Message, Rejection> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(Rejection::Malformed(Malformed("size")));
        }
        if datagram.len() < TAG_LEN {
            return Err(Rejection::Malformed(Malformed("size")));
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let m = decode_unsigned(signed).map_err(Rejection::Malformed)?;
        if m.header.cluster != self.cluster {
            return Err(Rejection::Cluster(m.header.cluster));
        }
        // ring compares in constant time.
        hmac::verify(&self.key, signed, tag).map_err(|_| Rejection::Signature)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Header, Probe};

    fn probe(cluster: &str) -> Message {
        Message {
            header: Header {
                cluster: cluster.into(),
                node: "a".into(),
                incarnation: 1,
                seq: 7,
                era: 1,
            },
            body: Body::Probe(Probe {
                target: "b".into(),
                nonce: 9,
            }),
        }
    }

    #[test]
    fn seal_and_open() {
        let s = Sealer::new("lan", b"secret");
        let d = s.seal(&probe("lan"));
        assert_eq!(s.open(&d), Ok(probe("lan")));
        assert_eq!(
            Sealer::new("lan", b"other").open(&d),
            Err(Rejection::Signature)
        );
        assert_eq!(
            Sealer::new("lab", b"secret").open(&d),
            Err(Rejection::Cluster("lan".into()))
        );
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let s = Sealer::new("lan", b"secret");
        let d = s.seal(&probe("lan"));
        for i in 0..d.len() * 8 {
            let mut bad = d.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(s.open(&bad).is_err(), "bit {i} flipped was accepted");
        }
    }

    #[test]
    fn size_is_checked_first() {
        let s = Sealer::new("lan", b"secret");
        assert!(matches!(s.open(&[0; 10]), Err(Rejection::Malformed(_))));
        assert!(matches!(
            s.open(&vec![0; MAX_DATAGRAM + 1]),
            Err(Rejection::Malformed(Malformed("size")))
        ));
    }
}
