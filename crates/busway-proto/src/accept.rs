//! The acceptor's side of the handshake.
//!
//! Full: (Hello) → Challenge → (Auth): the initiator's proof is checked against every secret
//! we accept (or the token its Hello named) → Accept, sealed with our first secret, and a
//! Ticket. Nothing the initiator sends after its Auth is acted on before the Auth verified:
//! the decoder holds behind the Auth until its key is known.
//!
//! Resumed: (Hello with ticket) → the ticket opened, expiry, names and trust checked, the
//! sealed identity opened with its resumption secret, its id struck in the register → Accept
//! and a fresh Ticket, and the 0-RTT frames behind the Hello are read. A ticket refused for any
//! reason but a replay is answered with a Challenge: the initiator goes on with a full
//! handshake on the same connection and the 0-RTT frames are skipped unread.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::connection::{Connection, State};
use crate::error::ProtoError;
use crate::establish::Pending;
use crate::frame::{Accept, Auth, Body, Challenge, Hello, Ticket};
use crate::handshake::seal::{both, derive, fingerprint, open, seal};
use crate::handshake::transcript::Transcript;
use crate::handshake::{self, acceptor_nonce, check_hello, MAX_TOKEN_ID_LEN};
use crate::mac::FrameMac;
use crate::strike::Strike;
use crate::ticket::{clip_name, TicketBody, MAX_TICKET_LEN};
use crate::trust::Trust;
use crate::wire::RecvCheck;

impl Connection {
    pub(crate) fn on_hello(&mut self, h: Hello, now: Instant) -> Result<(), ProtoError> {
        check_hello(h.version, &h.nonce)?;
        if h.ticket.len() > MAX_TICKET_LEN
            || h.token_id.len() > MAX_TOKEN_ID_LEN
            || (h.eager && !h.ticket.is_empty())
            || (h.ticket.is_empty() && !h.info.is_empty())
        {
            return Err(ProtoError::Handshake("protocol"));
        }
        let mut hs = Box::<Pending>::default();
        let mut t = Transcript::new(self.config.channel_binding.as_ref());
        t.hello(&h);
        hs.transcript = Some(t);
        if !h.token_id.is_empty() {
            let grant = self
                .config
                .tokens
                .as_ref()
                .and_then(|b| b.find(&h.token_id));
            let grant = grant.ok_or(ProtoError::Handshake("token"))?;
            hs.token = Some((h.token_id.clone(), grant));
        }
        if !h.ticket.is_empty() {
            if self.resume(&h, &mut hs, now)? {
                return Ok(());
            }
            // Refused, but not a replay: challenge, and skip the 0-RTT envelopes.
            hs.transcript()?.info(&h.info);
            self.pending_recv = Some(RecvCheck::SkipEarly);
        } else if h.eager {
            // Only under TLS, whose exporter makes the transcript fresh. Without one on our
            // side the two transcripts differ anyway: say so now.
            if self.config.channel_binding.is_none() {
                return Err(ProtoError::Handshake("auth"));
            }
            hs.eager = true;
            self.hs = Some(hs);
            self.state = State::AwaitAuth;
            return Ok(());
        }
        let nonce = acceptor_nonce(&h.nonce, &self.nonce, now);
        hs.transcript()?.challenge(&nonce);
        self.out.push_control(Body::Challenge(Challenge { nonce }));
        hs.since = Some(now);
        self.hs = Some(hs);
        self.state = State::AwaitAuth;
        Ok(())
    }

    /// Tries the Hello's ticket: `Ok(true)` once resumed, `Ok(false)` to fall back to a full
    /// handshake, an error for a replay or a forged proof.
    fn resume(&mut self, h: &Hello, hs: &mut Pending, now: Instant) -> Result<bool, ProtoError> {
        let Some(res) = self.config.resumption.clone() else {
            return Ok(false);
        };
        let Some(body) = res.open(&h.ticket) else {
            return Ok(false);
        };
        if body.expires <= res.now_unix() || body.node_a != clip_name(&self.config.node) {
            return Ok(false);
        }
        // The credential it was earned with must still be good: a revoked token or a secret
        // rotated out ends its tickets too.
        let (trust, node) = if body.token_id.is_empty() {
            let known = self
                .our_secrets()
                .iter()
                .any(|s| fingerprint(s) == body.secret_id);
            if !known {
                return Ok(false);
            }
            (Trust::Secret, body.node_i.clone())
        } else {
            let grant = self
                .config
                .tokens
                .as_ref()
                .and_then(|b| b.find(&body.token_id));
            let Some(grant) = grant else {
                return Ok(false);
            };
            let trust = Trust::Token {
                id: body.token_id.clone(),
                node: grant.node.clone(),
            };
            (trust, grant.node)
        };
        let t = hs.transcript()?;
        let plain = open(&body.secret, &t.snapshot(), "seal i", &h.info)
            .ok_or(ProtoError::Handshake("auth"))?;
        match res.strike(&body) {
            Strike::Fresh => {}
            Strike::Replay => return Err(ProtoError::Handshake("replay")),
            Strike::Full => return Ok(false),
        }
        t.info(&h.info);
        let mut peer = handshake::peer_info(&plain)?;
        peer.node = node;
        if self.config.channel_binding.is_none() {
            let key = derive(&body.secret, &t.snapshot(), "i2a");
            self.pending_recv = Some(RecvCheck::Keyed(Box::new(FrameMac::new(&key))));
        }
        let nonce = acceptor_nonce(&h.nonce, &self.nonce, now);
        let accept = self.accept(t, nonce, Some(&body.secret), false);
        self.out.push_control(Body::Accept(accept));
        if body.token_id.is_empty() {
            self.verified_by = Some(body.secret_id);
        }
        let master = both(&body.secret, &body.secret);
        let last = t.snapshot();
        self.finish_keys(&master, &last, &peer.node, &body.token_id, body.secret_id);
        self.establish(peer, Duration::ZERO, trust, true, now);
        Ok(true)
    }

    pub(crate) fn on_auth(&mut self, a: Auth, now: Instant) -> Result<(), ProtoError> {
        let mut hs = self.hs.take().ok_or(ProtoError::Handshake("protocol"))?;
        let candidates = match &hs.token {
            Some((_, grant)) => vec![grant.secret.clone()],
            None => self.our_secrets(),
        };
        let mut t = hs
            .transcript
            .take()
            .ok_or(ProtoError::Handshake("protocol"))?;
        let t = &mut t;
        t.auth(&a);
        let snap = t.snapshot();
        let (plain, i_secret) = if a.sealed {
            let found = candidates
                .into_iter()
                .find_map(|s| open(&s, &snap, "seal i", &a.info).map(|p| (p, s)));
            let (p, s) = found.ok_or(ProtoError::Handshake("auth"))?;
            (p, Some(s))
        } else {
            (a.info.to_vec(), None)
        };
        let trust = match (&hs.token, &i_secret) {
            (Some((id, grant)), Some(_)) => Trust::Token {
                id: id.clone(),
                node: grant.node.clone(),
            },
            (None, Some(_)) => Trust::Secret,
            // A token named and nothing proved, or nothing proved where we require it.
            (Some(_), None) => return Err(ProtoError::Handshake("auth")),
            (None, None) if self.config.anonymous => Trust::Anonymous,
            (None, None) if self.config.secret.is_none() => Trust::Secret,
            (None, None) => return Err(ProtoError::Handshake("auth")),
        };
        t.info(&a.info);
        if hs.token.is_none() {
            self.verified_by = i_secret.as_deref().map(fingerprint);
        }
        let mut peer = handshake::peer_info(&plain)?;
        if let Some((_, grant)) = &hs.token {
            peer.node = grant.node.clone();
        }
        // Always said, keyed or not: after a refused ticket the decoder was skipping.
        self.pending_recv = Some(match (&i_secret, self.config.channel_binding) {
            (Some(s), None) => {
                let key = derive(s, &t.snapshot(), "i2a");
                RecvCheck::Keyed(Box::new(FrameMac::new(&key)))
            }
            _ => RecvCheck::Plain,
        });
        // We prove our first secret, or the token's.
        let a_secret = match (&hs.token, &i_secret) {
            (Some((_, grant)), Some(_)) => Some(grant.secret.clone()),
            (None, Some(_)) => self.config.secret.clone(),
            _ => None,
        };
        let anonymous = trust == Trust::Anonymous;
        let accept = self.accept(t, Bytes::new(), a_secret.as_deref(), anonymous);
        self.out.push_control(Body::Accept(accept));
        if let (Some(i), Some(a)) = (&i_secret, &a_secret) {
            let master = both(i, a);
            let last = t.snapshot();
            let (token_id, secret_id) = match &hs.token {
                Some((id, _)) => (id.clone(), [0; 8]),
                None => (String::new(), fingerprint(i)),
            };
            self.finish_keys(&master, &last, &peer.node, &token_id, secret_id);
        }
        let rtt = hs
            .since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        self.establish(peer, rtt, trust, false, now);
        Ok(())
    }

    /// Our Accept: our identity, sealed with `secret` over the whole transcript — or in clear
    /// when the peer proved nothing, and then without namespace and labels if it is anonymous.
    fn accept(
        &self,
        t: &mut Transcript,
        nonce: Bytes,
        secret: Option<&[u8]>,
        anonymous: bool,
    ) -> Accept {
        let mut accept = Accept {
            nonce,
            info: Bytes::new(),
            sealed: secret.is_some(),
        };
        t.accept(&accept);
        let plain = handshake::info(&self.config, anonymous);
        accept.info = match secret {
            Some(s) => seal(s, &t.snapshot(), "seal a", &plain).into(),
            None => plain.into(),
        };
        t.info(&accept.info);
        accept
    }

    /// After a proved handshake: our envelope key, and a ticket for the initiator's next
    /// transport when resumption is on.
    fn finish_keys(
        &mut self,
        master: &[u8],
        last: &[u8; 32],
        peer_node: &str,
        token_id: &str,
        secret_id: [u8; 8],
    ) {
        if self.config.channel_binding.is_none() {
            self.pending_send = Some(FrameMac::new(&derive(master, last, "a2i")));
        }
        let Some(res) = self.config.resumption.clone() else {
            return;
        };
        let body = TicketBody {
            id: [0; 16],
            expires: 0,
            secret: derive(master, last, "resumption"),
            secret_id,
            token_id: token_id.to_owned(),
            node_i: clip_name(peer_node),
            node_a: clip_name(&self.config.node),
        };
        if let Some((ticket, lifetime_s)) = res.issue(body) {
            self.out
                .push_control(Body::Ticket(Ticket { ticket, lifetime_s }));
        }
    }
}
