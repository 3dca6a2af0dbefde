//! Resumption tickets: what an acceptor issues after a proved handshake and an initiator
//! presents to skip the Challenge round trip next time (0-RTT, docs/PROTOCOL.md, 5).
//!
//! A ticket is opaque to the initiator: the acceptor seals its contents with a key only it
//! holds ([`Resumption`]), so it keeps no state per issued ticket. What it does keep is the
//! strike register of the tickets *used*, which is what makes each one usable once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::PeerInfo;
use crate::strike::{Strike, StrikeRegister, TICKET_ID_LEN};
use crate::trust::Trust;

/// The longest a ticket lives (CONTRACT section 10).
pub const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(3600);
/// Largest ticket accepted from a peer, checked before anything is decrypted or allocated.
pub const MAX_TICKET_LEN: usize = 1024;
/// Default bound of the strike register: at 16 + 8 bytes an entry plus the maps, a few MiB.
pub const DEFAULT_STRIKE_CAPACITY: usize = 100_000;

/// Associated data of every sealed ticket, so nothing else sealed with the key is a ticket.
const TICKET_AAD: &[u8] = b"busway/3 ticket";
/// Starts [`Resumption::to_bytes`].
const STATE_MAGIC: &[u8; 8] = b"bwresum1";

/// A ticket as the initiator keeps it, from [`crate::Event::Ticket`]; the node stores it per
/// peer and puts it in [`crate::Config::ticket`] when it dials that peer again.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The opaque ticket, sent back in the Hello.
    pub ticket: Bytes,
    /// The resumption secret it stands for, which proves the initiator on resumption.
    pub secret: [u8; 32],
    /// How long the acceptor accepts it, from when it was received.
    pub lifetime: Duration,
    /// The acceptor as the handshake that earned the ticket described it: a resumed transport
    /// sends within its `max_frame` before the acceptor has answered.
    pub peer: PeerInfo,
    /// The trust that handshake ended with; a resumed transport ends with the same.
    pub trust: Trust,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("len", &self.ticket.len())
            .field("secret", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("peer", &self.peer.node)
            .field("trust", &self.trust)
            .finish()
    }
}

/// What a ticket holds, sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TicketBody {
    pub id: [u8; TICKET_ID_LEN],
    /// Unix seconds.
    pub expires: u64,
    pub secret: [u8; 32],
    /// The fingerprint of the shared secret the initiator proved; zero for a token.
    pub secret_id: [u8; 8],
    /// The token it proved, empty for a shared secret.
    pub token_id: String,
    /// Both node names: the initiator's as the acceptor knew it (a token's name for a
    /// token), and the acceptor's own.
    pub node_i: String,
    pub node_a: String,
}

impl TicketBody {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(128);
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.expires.to_be_bytes());
        v.extend_from_slice(&self.secret);
        v.extend_from_slice(&self.secret_id);
        for s in [&self.token_id, &self.node_i, &self.node_a] {
            // Names are clipped to fit when issued (`clip_name`).
            v.extend_from_slice(&(s.len() as u16).to_be_bytes());
            v.extend_from_slice(s.as_bytes());
        }
        v
    }

    fn decode(b: &[u8]) -> Option<TicketBody> {
        let mut r = Reader(b);
        let body = TicketBody {
            id: r.array()?,
            expires: u64::from_be_bytes(r.array()?),
            secret: r.array()?,
            secret_id: r.array()?,
            token_id: r.string()?,
            node_i: r.string()?,
            node_a: r.string()?,
        };
        r.0.is_empty().then_some(body)
    }
}

/// Names in a ticket are at most this long, so a ticket always fits [`MAX_TICKET_LEN`].
pub(crate) fn clip_name(s: &str) -> String {
    crate::clip(s, 256).to_owned()
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    /// A field written with a two-byte length before it.
    pub(crate) fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        Some(self.take(n)?.to_vec())
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

/// Where [`Resumption`] reads the time: tickets expire in wall-clock time, which survives a
/// restart (the register is persisted with `state_dir`).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// An acceptor's resumption state, shared by all its transports: the ticket key, the ticket
/// lifetime and the strike register. Give every [`crate::Config`] of a node the same `Arc`.
pub struct Resumption {
    state: Mutex<State>,
    lifetime: Duration,
    clock: Clock,
}

struct State {
    key_bytes: [u8; 32],
    key: LessSafeKey,
    register: StrikeRegister,
}

impl std::fmt::Debug for Resumption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumption")
            .field("lifetime", &self.lifetime)
            .field("used", &self.used_tickets())
            .finish_non_exhaustive()
    }
}

/// Why [`Resumption::from_bytes`] refused saved state.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("resumption state is damaged or from another version")]
pub struct StateError;

impl Resumption {
    /// A fresh ticket key (so tickets issued before a restart without saved state fail and
    /// their holders do a full handshake), tickets valid for `lifetime` (at most an hour), and
    /// a register of at most `capacity` used ids.
    pub fn new(lifetime: Duration, capacity: usize) -> Resumption {
        let mut key = [0u8; 32];
        // The system RNG fails only on a broken OS: then tickets are off (lifetime zero)
        // rather than sealed with a key anyone could guess.
        let ok = SystemRandom::new().fill(&mut key).is_ok();
        let lifetime = if ok {
            lifetime.min(MAX_TICKET_LIFETIME)
        } else {
            Duration::ZERO
        };
        Resumption::with_key(key, lifetime, StrikeRegister::new(capacity))
    }

    fn with_key(key_bytes: [u8; 32], lifetime: Duration, register: StrikeRegister) -> Resumption {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &key_bytes).expect("a 32-byte AES-256 key"),
        );
        Resumption {
            state: Mutex::new(State {
                key_bytes,
                key,
                register,
            }),
            lifetime: lifetime.min(MAX_TICKET_LIFETIME),
            clock: Arc::new(SystemTime::now),
        }
    }

    /// The same state reading the time from `clock` (tests).
    pub fn with_clock(mut self, clock: Clock) -> Resumption {
        self.clock = clock;
        self
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Ticket ids in the strike register now.
    pub fn used_tickets(&self) -> usize {
        self.lock().register.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves consistent data (every update is one
        // insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now_unix(&self) -> u64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Seals a ticket for `body` (whose `id` and `expires` are filled in here); `None` if the
    /// system RNG failed or tickets are off (`lifetime` zero).
    pub(crate) fn issue(&self, mut body: TicketBody) -> Option<(Bytes, u32)> {
        if self.lifetime.is_zero() {
            return None;
        }
        let rng = SystemRandom::new();
        rng.fill(&mut body.id).ok()?;
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce).ok()?;
        body.expires = self.now_unix().saturating_add(self.lifetime.as_secs());
        let mut sealed = body.encode();
        self.lock()
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(TICKET_AAD),
                &mut sealed,
            )
            .ok()?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some((Bytes::from(out), self.lifetime.as_secs() as u32))
    }

    /// The contents of a ticket this key sealed, expired or not; `None` for anything else.
    pub(crate) fn open(&self, ticket: &[u8]) -> Option<TicketBody> {
        if ticket.len() > MAX_TICKET_LEN || ticket.len() < 12 + 16 {
            return None;
        }
        let (nonce, sealed) = ticket.split_at(12);
        let mut buf = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .lock()
            .key
            .open_in_place(nonce, Aad::from(TICKET_AAD), &mut buf)
            .ok()?
            .to_vec();
        TicketBody::decode(&plain)
    }

    /// Records the use of a ticket.
    pub(crate) fn strike(&self, body: &TicketBody) -> Strike {
        let now = self.now_unix();
        self.lock().register.strike(body.id, body.expires, now)
    }

    /// The key, the lifetime and the register, for `state_dir`: the node writes this to a
    /// file only it may read (it holds the ticket key) and loads it at start, so tickets and
    /// the record of their use survive a restart.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.lock();
        let now = self.now_unix();
        s.register.forget_expired(now);
        let mut v = Vec::with_capacity(64 + s.register.len() * 24);
        v.extend_from_slice(STATE_MAGIC);
        v.extend_from_slice(&s.key_bytes);
        v.extend_from_slice(&(self.lifetime.as_secs() as u32).to_be_bytes());
        v.extend_from_slice(&(s.register.capacity() as u32).to_be_bytes());
        v.extend_from_slice(&(s.register.len() as u32).to_be_bytes());
        for (id, expires) in s.register.entries() {
            v.extend_from_slice(id);
            v.extend_from_slice(&expires.to_be_bytes());
        }
        v
    }

    /// State saved by [`Resumption::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Resumption, StateError> {
        let mut r = Reader(b);
        if r.take(STATE_MAGIC.len()) != Some(&STATE_MAGIC[..]) {
            return Err(StateError);
        }
        let key: [u8; 32] = r.array().ok_or(StateError)?;
        let lifetime = u32::from_be_bytes(r.array().ok_or(StateError)?);
        let capacity = u32::from_be_bytes(r.array().ok_or(StateError)?) as usize;
        let n = u32::from_be_bytes(r.array().ok_or(StateError)?) as usize;
        // Each entry is 24 bytes: the count must match what is there before anything is
        // allocated for it.
        if r.0.len() != n.checked_mul(24).ok_or(StateError)? {
            return Err(StateError);
        }
        let mut register = StrikeRegister::new(capacity);
        for _ in 0..n {
            let id = r.array().ok_or(StateError)?;
            let expires = u64::from_be_bytes(r.array().ok_or(StateError)?);
            // Saved state holds no expired ids, and a register cannot refuse them at this
            // point: `now` zero keeps everything.
            if register.strike(id, expires, 0) != Strike::Fresh {
                return Err(StateError);
            }
        }
        Ok(Resumption::with_key(
            key,
            Duration::from_secs(lifetime.into()),
            register,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn body() -> TicketBody {
        TicketBody {
            id: [0; 16],
            expires: 0,
            secret: [5; 32],
            secret_id: [6; 8],
            token_id: "tok".into(),
            node_i: "ingress".into(),
            node_a: "egress".into(),
        }
    }

    fn clocked(r: Resumption) -> (Resumption, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(1_000_000));
        let c = t.clone();
        let r = r.with_clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(c.load(Ordering::Relaxed))
        }));
        (r, t)
    }

    #[test]
    fn a_ticket_opens_with_its_key_only() {
        let (r, _) = clocked(Resumption::new(Duration::from_secs(600), 10));
        let (t, lifetime) = r.issue(body()).unwrap();
        assert_eq!(lifetime, 600);
        let got = r.open(&t).unwrap();
        assert_eq!(got.expires, 1_000_600);
        assert_eq!(
            (got.node_i.as_str(), got.token_id.as_str()),
            ("ingress", "tok")
        );
        assert_ne!(got.id, [0; 16], "a random id");
        let other = Resumption::new(Duration::from_secs(600), 10);
        assert!(other.open(&t).is_none());
        let mut bad = t.to_vec();
        bad[20] ^= 1;
        assert!(r.open(&bad).is_none());
        assert!(r.open(&vec![0; MAX_TICKET_LEN + 1]).is_none());
        assert!(r.open(b"short").is_none());
    }

    #[test]
    fn lifetime_is_capped_at_an_hour() {
        let r = Resumption::new(Duration::from_secs(7200), 10);
        assert_eq!(r.lifetime(), MAX_TICKET_LIFETIME);
    }

    #[test]
    fn state_round_trips_without_expired_ids() {
        let (r, t) = clocked(Resumption::new(Duration::from_secs(60), 10));
        let (a, _) = r.issue(body()).unwrap();
        let a = r.open(&a).unwrap();
        assert_eq!(r.strike(&a), Strike::Fresh);
        t.fetch_add(30, Ordering::Relaxed);
        let (b, _) = r.issue(body()).unwrap();
        let b = r.open(&b).unwrap();
        assert_eq!(r.strike(&b), Strike::Fresh);
        t.fetch_add(40, Ordering::Relaxed);
        // `a` expired: it is not saved.
        let saved = r.to_bytes();
        let (back, _) = clocked(Resumption::from_bytes(&saved).unwrap());
        assert_eq!(back.used_tickets(), 1);
        assert_eq!(back.lifetime(), Duration::from_secs(60));
        // The same key opens the old tickets, and the register still knows `b`.
        let b2 = back.open(&r.issue(body()).unwrap().0).unwrap();
        assert_eq!(b2.node_a, "egress");
        assert_eq!(back.strike(&b), Strike::Replay);
        for cut in 0..saved.len() {
            assert!(Resumption::from_bytes(&saved[..cut]).is_err(), "cut {cut}");
        }
        assert!(Resumption::from_bytes(b"bwresum1").is_err());
    }
}
