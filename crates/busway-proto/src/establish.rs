//! The handshake as seen by a [`Connection`]: which frame each side expects before it is
//! established, the initiator's side of it, and what establishing sets up. The acceptor's side
//! is in `accept.rs`; the transcript, keys and checks are in `handshake/`; frames after the
//! handshake are dispatched in `inbound.rs`.
//!
//! Initiator, full: Hello → (Challenge) → Auth, then it may open streams at once → (Accept).
//! Resuming: Hello with ticket and sealed identity, streams at once → (Accept), or (Challenge)
//! if the acceptor refused the ticket: then Auth and the 0-RTT frames again.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::PeerInfo;
use crate::connection::{Connection, State, DATA_OVERHEAD};
use crate::error::ProtoError;
use crate::event::Event;
use crate::frame::{Accept, Auth, Body, Challenge, Frame, Hello};
use crate::handshake::seal::{both, derive, fingerprint, open, seal};
use crate::handshake::transcript::Transcript;
use crate::handshake::{
    self, check_nonce, HANDSHAKE_VERSION, MIN_CONN_WINDOW, MIN_MAX_FRAME, MIN_STREAM_WINDOW,
};
use crate::mac::FrameMac;
use crate::ticket::{Ticket, MAX_TICKET_LEN, MAX_TICKET_LIFETIME};
use crate::trust::{TokenGrant, Trust};
use crate::wire::RecvCheck;
use crate::MAX_DATA_PAYLOAD;

/// What a handshake in progress has learnt.
#[derive(Default)]
pub(crate) struct Pending {
    pub transcript: Option<Transcript>,
    /// Initiator: the secret it proved (or the ticket's resumption secret). Acceptor: the one
    /// the initiator proved.
    pub i_secret: Option<Vec<u8>>,
    /// Acceptor: the token the Hello named, as the book returned it.
    pub token: Option<(String, TokenGrant)>,
    /// Initiator: the ticket it is resuming with (none once the acceptor refused it).
    pub ticket: Option<Ticket>,
    /// Initiator: the non-handshake frames sent after a resuming Hello, to send again if the
    /// acceptor refuses the ticket. Bounded by the early windows and [`MAX_EARLY_STREAMS`].
    ///
    /// [`MAX_EARLY_STREAMS`]: crate::handshake::MAX_EARLY_STREAMS
    pub early: Vec<Frame>,
    /// Acceptor: when the Challenge was queued, to measure the round trip.
    pub since: Option<Instant>,
    /// The initiator sent its Auth without waiting for a Challenge.
    pub eager: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("token", &self.token.as_ref().map(|t| &t.0))
            .field("ticket", &self.ticket.is_some())
            .field("early", &self.early.len())
            .finish_non_exhaustive()
    }
}

impl Pending {
    pub fn transcript(&mut self) -> Result<&mut Transcript, ProtoError> {
        self.transcript
            .as_mut()
            .ok_or(ProtoError::Handshake("protocol"))
    }
}

impl Connection {
    pub(crate) fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtoError> {
        match (self.state, frame.body) {
            (State::Established, body) => self.on_established_frame(body, now),
            (_, Some(Body::GoAway(g))) => Err(ProtoError::Handshake(peer_abort_reason(&g.reason))),
            (State::AwaitHello, Some(Body::Hello(h))) => self.on_hello(h, now),
            (State::AwaitAuth, Some(Body::Auth(a))) => self.on_auth(a, now),
            (State::AwaitChallenge, Some(Body::Challenge(c))) => self.on_challenge(c, now),
            (State::AwaitAccept, Some(Body::Challenge(c)))
                if self.hs.as_ref().is_some_and(|h| h.ticket.is_some()) =>
            {
                self.on_refused_ticket(c)
            }
            (State::AwaitAccept, Some(Body::Accept(a))) => self.on_accept(a, now),
            _ => Err(ProtoError::Handshake("protocol")),
        }
    }

    /// The initiator's first flight, queued by [`Connection::new`].
    pub(crate) fn start(&mut self) {
        let mut hs = Box::<Pending>::default();
        let mut t = Transcript::new(self.config.channel_binding.as_ref());
        let mut hello = Hello {
            version: HANDSHAKE_VERSION,
            nonce: Bytes::copy_from_slice(&self.nonce),
            token_id: self
                .config
                .token
                .as_ref()
                .map(|t| t.id.clone())
                .unwrap_or_default(),
            ..Hello::default()
        };
        if let Some(ticket) = self.config.ticket.clone() {
            hello.ticket = ticket.ticket.clone();
            t.hello(&hello);
            let plain = handshake::info(&self.config, false);
            hello.info = seal(&ticket.secret, &t.snapshot(), "seal i", &plain).into();
            t.info(&hello.info);
            if self.config.channel_binding.is_none() {
                let key = derive(&ticket.secret, &t.snapshot(), "i2a");
                self.pending_send = Some(FrameMac::new(&key));
            }
            self.set_max_chunk(ticket.peer.max_frame);
            self.give_early_credit();
            hs.i_secret = Some(ticket.secret.to_vec());
            hs.ticket = Some(ticket);
            self.out.push_control(Body::Hello(hello));
            self.state = State::AwaitAccept;
        } else if self.config.channel_binding.is_some() {
            // Under TLS the exporter is as fresh as the acceptor's nonce: no need to wait.
            hello.eager = true;
            t.hello(&hello);
            hs.eager = true;
            hs.transcript = Some(t);
            self.out.push_control(Body::Hello(hello));
            let auth = self.auth(&mut hs);
            self.out.push_control(Body::Auth(auth));
            self.state = State::AwaitAccept;
            self.hs = Some(hs);
            return;
        } else {
            t.hello(&hello);
            self.out.push_control(Body::Hello(hello));
        }
        hs.transcript = Some(t);
        self.hs = Some(hs);
    }

    /// Our Auth: our identity, sealed with our secret or token over the transcript so far.
    /// From here on we may open streams (within the early windows), MAC'd with `i2a`.
    fn auth(&mut self, hs: &mut Pending) -> Auth {
        let cred = match &self.config.token {
            Some(t) => Some(t.secret.clone()),
            None => self.config.secret.clone(),
        };
        let plain = handshake::info(&self.config, false);
        let mut auth = Auth {
            info: Bytes::new(),
            sealed: cred.is_some(),
        };
        let Some(t) = hs.transcript.as_mut() else {
            return auth;
        };
        t.auth(&auth);
        auth.info = match &cred {
            Some(c) => seal(c, &t.snapshot(), "seal i", &plain).into(),
            None => plain.into(),
        };
        t.info(&auth.info);
        if let Some(c) = &cred {
            if self.config.channel_binding.is_none() {
                self.pending_send = Some(FrameMac::new(&derive(c, &t.snapshot(), "i2a")));
            }
        }
        hs.i_secret = cred;
        if !self.early_credit {
            // The acceptor's max_frame is unknown until its Accept.
            self.set_max_chunk(MIN_MAX_FRAME);
            self.give_early_credit();
        }
        auth
    }

    fn on_challenge(&mut self, c: Challenge, now: Instant) -> Result<(), ProtoError> {
        check_nonce(&c.nonce)?;
        let mut hs = self.hs.take().ok_or(ProtoError::Handshake("protocol"))?;
        hs.transcript()?.challenge(&c.nonce);
        let auth = self.auth(&mut hs);
        self.out.push_control(Body::Auth(auth));
        self.rtt = Some(now.saturating_duration_since(self.created));
        self.hs = Some(hs);
        self.state = State::AwaitAccept;
        Ok(())
    }

    /// The acceptor refused our ticket (expired, unknown key, register full) and challenges
    /// us: a full Auth goes first, then every 0-RTT frame again, which it dropped unread.
    fn on_refused_ticket(&mut self, c: Challenge) -> Result<(), ProtoError> {
        check_nonce(&c.nonce)?;
        let mut hs = self.hs.take().ok_or(ProtoError::Handshake("protocol"))?;
        hs.transcript()?.challenge(&c.nonce);
        hs.ticket = None;
        let early = std::mem::take(&mut hs.early);
        let auth = self.auth(&mut hs);
        self.out.requeue_front(early);
        self.out.push_control_front(Body::Auth(auth));
        self.hs = Some(hs);
        Ok(())
    }

    fn on_accept(&mut self, a: Accept, now: Instant) -> Result<(), ProtoError> {
        let mut hs = self.hs.take().ok_or(ProtoError::Handshake("protocol"))?;
        let resumed = hs.ticket.is_some();
        if resumed {
            check_nonce(&a.nonce)?;
        } else if !a.nonce.is_empty() {
            return Err(ProtoError::Handshake("protocol"));
        }
        let mut t = hs
            .transcript
            .take()
            .ok_or(ProtoError::Handshake("protocol"))?;
        let t = &mut t;
        t.accept(&a);
        let snap = t.snapshot();
        let (plain, a_secret) = match (&hs.ticket, a.sealed, &hs.i_secret) {
            (Some(ticket), true, _) => {
                let p = open(&ticket.secret, &snap, "seal a", &a.info);
                (
                    p.ok_or(ProtoError::Handshake("auth"))?,
                    Some(ticket.secret.to_vec()),
                )
            }
            (Some(_), false, _) => return Err(ProtoError::Handshake("auth")),
            // It proves a secret we lack, or lacks the one we proved.
            (None, true, None) | (None, false, Some(_)) => {
                return Err(ProtoError::Handshake("auth"))
            }
            (None, false, None) => (a.info.to_vec(), None),
            (None, true, Some(_)) => {
                let found = self
                    .our_secrets()
                    .into_iter()
                    .find_map(|s| open(&s, &snap, "seal a", &a.info).map(|p| (p, s)));
                let (p, s) = found.ok_or(ProtoError::Handshake("auth"))?;
                (p, Some(s))
            }
        };
        t.info(&a.info);
        if hs.ticket.is_none() && self.config.token.is_none() {
            self.verified_by = a_secret.as_deref().map(fingerprint);
        }
        let last = t.snapshot();
        let peer = handshake::peer_info(&plain)?;
        let trust = match (&hs.ticket, &self.config.token, &a_secret) {
            (Some(ticket), _, _) => ticket.trust.clone(),
            (None, Some(token), Some(_)) => Trust::Token {
                id: token.id.clone(),
                node: peer.node.clone(),
            },
            (None, _, Some(_)) => Trust::Secret,
            (None, _, None) if self.config.anonymous => Trust::Anonymous,
            (None, _, None) => Trust::Secret,
        };
        if let (Some(i), Some(a)) = (&hs.i_secret, &a_secret) {
            let master = both(i, a);
            if self.config.channel_binding.is_none() {
                let key = derive(&master, &last, "a2i");
                self.pending_recv = Some(RecvCheck::Keyed(Box::new(FrameMac::new(&key))));
            }
            self.resume_secret = Some(derive(&master, &last, "resumption"));
        }
        let rtt = match self.rtt {
            Some(rtt) if !resumed && !hs.eager => rtt,
            _ => now.saturating_duration_since(self.created),
        };
        self.establish(peer, rtt, trust, resumed, now);
        Ok(())
    }

    /// The secrets we accept a proof by: the token's alone, or ours and the others listed.
    pub(crate) fn our_secrets(&self) -> Vec<Vec<u8>> {
        if let Some(t) = &self.config.token {
            return vec![t.secret.clone()];
        }
        match &self.config.secret {
            Some(s) => std::iter::once(s.clone())
                .chain(self.config.accepted.iter().cloned())
                .collect(),
            None => Vec::new(),
        }
    }

    /// An initiator's Ticket frame, once established: handed to the node.
    pub(crate) fn on_ticket(&mut self, t: crate::frame::Ticket) -> Result<(), ProtoError> {
        if self.side() == crate::Side::Acceptor {
            return Err(ProtoError::Protocol("ticket sent to the acceptor".into()));
        }
        if t.ticket.len() > MAX_TICKET_LEN {
            return Err(ProtoError::Protocol("ticket too long".into()));
        }
        // Without a proved secret there is no resumption secret: nothing to resume.
        let (Some(secret), Some(peer), Some(trust)) =
            (self.resume_secret, self.peer.clone(), self.trust.clone())
        else {
            return Ok(());
        };
        if t.ticket.is_empty() || t.lifetime_s == 0 {
            return Ok(());
        }
        let lifetime = Duration::from_secs(t.lifetime_s.into()).min(MAX_TICKET_LIFETIME);
        self.events.push_back(Event::Ticket(Ticket {
            ticket: t.ticket,
            secret,
            lifetime,
            peer,
            trust,
        }));
        Ok(())
    }

    fn set_max_chunk(&mut self, max_frame: u32) {
        self.max_chunk = (max_frame.saturating_sub(DATA_OVERHEAD) as usize).min(MAX_DATA_PAYLOAD);
    }

    /// Before the acceptor's windows are known, what every acceptor grants at least.
    fn give_early_credit(&mut self) {
        self.early_credit = true;
        self.out.add_conn_credit(MIN_CONN_WINDOW);
    }

    /// What a stream opened now may send before the peer grants more.
    pub(crate) fn initial_send_credit(&self) -> u32 {
        self.peer
            .as_ref()
            .map_or(MIN_STREAM_WINDOW, |p| p.stream_window)
    }

    pub(crate) fn establish(
        &mut self,
        peer: PeerInfo,
        rtt: Duration,
        trust: Trust,
        resumed: bool,
        now: Instant,
    ) {
        self.set_max_chunk(peer.max_frame);
        let mut writable = Vec::new();
        if self.early_credit {
            // Streams opened early got the minimum windows: now the rest.
            self.out
                .add_conn_credit(peer.conn_window.saturating_sub(MIN_CONN_WINDOW));
            let more = u64::from(peer.stream_window.saturating_sub(MIN_STREAM_WINDOW));
            for (id, s) in self.streams.iter_mut() {
                s.send_credit += more;
                if more > 0 && !s.send_fin && s.reset.is_none() {
                    writable.push(id);
                }
            }
            writable.sort_unstable();
        } else {
            self.out.add_conn_credit(peer.conn_window);
        }
        self.rtt = Some(rtt);
        if !self.config.ping_interval.is_zero() {
            self.next_ping = now.checked_add(self.config.ping_interval);
        }
        self.state = State::Established;
        self.hs = None;
        self.peer = Some(peer.clone());
        self.trust = Some(trust.clone());
        self.resumed = resumed;
        self.events.push_back(Event::Established {
            peer,
            rtt,
            trust,
            resumed,
        });
        self.events
            .extend(writable.into_iter().map(|id| Event::Writable { id }));
        if self.local_goaway {
            self.send_goaway();
        }
    }
}

/// A GoAway during the handshake is the peer giving up; its reason is the peer's error label.
fn peer_abort_reason(reason: &str) -> &'static str {
    match reason {
        "auth" => "auth",
        "version" => "version",
        "token" => "token",
        "replay" => "replay",
        "timeout" => "timeout",
        _ => "protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_abort_labels() {
        assert_eq!(peer_abort_reason("auth"), "auth");
        assert_eq!(peer_abort_reason("version"), "version");
        assert_eq!(peer_abort_reason("replay"), "replay");
        assert_eq!(peer_abort_reason("checksum"), "protocol");
    }
}
