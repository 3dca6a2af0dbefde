//! The handshake's keys: every one is HKDF-SHA256 of a secret, salted with a transcript
//! snapshot, so it proves the secret *and* the whole transcript up to that point.
//!
//! - `seal i` / `seal a`: AES-256-GCM keys that seal each side's identity ([`seal`]). The
//!   AEAD tag is that side's proof: only a holder of the secret can make it, and it covers the
//!   transcript as associated data. A key serves for one message, so its nonce is zero.
//! - `i2a`: the initiator's envelope MAC key, from the initiator's secret and the transcript
//!   through its identity, so its Opens and Data may follow the Auth at once.
//! - `a2i` and `resumption`: from both sides' secrets and the whole transcript.
//!
//! Secrets are the shared secret each side proves, a token's secret, or a ticket's resumption
//! secret (docs/PROTOCOL.md, 3.4).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::hmac;

/// Length of every derived key.
pub(crate) const KEY_LEN: usize = 32;

/// Bytes an AEAD adds to what it seals.
pub(crate) const SEAL_OVERHEAD: usize = 16;

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256: extract with the transcript snapshot as salt, expand with the label.
pub(crate) fn derive(secret: &[u8], snapshot: &[u8; 32], label: &str) -> [u8; KEY_LEN] {
    let prk = Salt::new(HKDF_SHA256, snapshot).extract(secret);
    let mut out = [0u8; KEY_LEN];
    let info = [b"busway/3 ".as_slice(), label.as_bytes()];
    // Expanding 32 bytes from SHA-256 cannot fail (the limit is 255 blocks).
    if let Ok(okm) = prk.expand(&info, Len(KEY_LEN)) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// The input of the keys both sides' secrets enter: `u32 BE len | secret`, twice.
pub(crate) fn both(i_secret: &[u8], a_secret: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + i_secret.len() + a_secret.len());
    for s in [i_secret, a_secret] {
        v.extend_from_slice(&(s.len() as u32).to_be_bytes());
        v.extend_from_slice(s);
    }
    v
}

fn aead(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

/// Seals `plain` with the key `label` derives from `secret` and `snapshot`; the snapshot is
/// the associated data too. Returns ciphertext and tag.
pub(crate) fn seal(secret: &[u8], snapshot: &[u8; 32], label: &str, plain: &[u8]) -> Vec<u8> {
    let key = aead(&derive(secret, snapshot, label));
    let mut out = plain.to_vec();
    // Sealing fails only for inputs over 64 GiB.
    let _ = key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(&snapshot[..]),
        &mut out,
    );
    out
}

/// Opens what [`seal`] made, or `None` if `secret` or the transcript differ (or it was
/// altered). This is where a proof is checked: constant time, inside ring.
pub(crate) fn open(
    secret: &[u8],
    snapshot: &[u8; 32],
    label: &str,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let key = aead(&derive(secret, snapshot, label));
    let mut buf = sealed.to_vec();
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(&snapshot[..]),
            &mut buf,
        )
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

/// A short public name of a secret, kept in tickets so that a ticket stops working once the
/// secret it was earned with is no longer accepted (after a rotation).
pub(crate) fn fingerprint(secret: &[u8]) -> [u8; 8] {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        b"busway/3 secret id",
    );
    let mut out = [0u8; 8];
    out.copy_from_slice(&tag.as_ref()[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_opens_only_with_the_same_secret_transcript_and_label() {
        let t = [1u8; 32];
        let sealed = seal(b"secret", &t, "seal i", b"who I am");
        assert_eq!(sealed.len(), 8 + SEAL_OVERHEAD);
        assert_eq!(
            open(b"secret", &t, "seal i", &sealed).as_deref(),
            Some(&b"who I am"[..])
        );
        assert!(open(b"secreT", &t, "seal i", &sealed).is_none());
        assert!(open(b"secret", &[2; 32], "seal i", &sealed).is_none());
        assert!(open(b"secret", &t, "seal a", &sealed).is_none());
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert!(open(b"secret", &t, "seal i", &bad).is_none());
        assert!(open(b"secret", &t, "seal i", &sealed[..10]).is_none());
    }

    #[test]
    fn keys_differ_by_every_input() {
        let k = derive(b"s", &[0; 32], "i2a");
        assert_ne!(k, derive(b"t", &[0; 32], "i2a"));
        assert_ne!(k, derive(b"s", &[1; 32], "i2a"));
        assert_ne!(k, derive(b"s", &[0; 32], "a2i"));
        assert_ne!(both(b"ab", b"c"), both(b"a", b"bc"));
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }
}
