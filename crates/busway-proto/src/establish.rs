//! The handshake as seen by a [`Connection`]: which frame each side expects before it is
//! established, and what establishing sets up. The proofs and checks themselves are in
//! `handshake.rs`; frames after the handshake are dispatched in `inbound.rs`.

use std::time::{Duration, Instant};

use crate::config::PeerInfo;
use crate::connection::{Connection, State, DATA_OVERHEAD};
use crate::error::ProtoError;
use crate::event::Event;
use crate::frame::{Auth, Body, Frame};
use crate::handshake::{self, Prover, Transcript};
use crate::MAX_DATA_PAYLOAD;

impl Connection {
    pub(crate) fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtoError> {
        match (&self.state, frame.body) {
            (State::Established, body) => self.on_established_frame(body, now),
            (_, Some(Body::GoAway(g))) => Err(ProtoError::Handshake(peer_abort_reason(&g.reason))),
            (State::AwaitHello, Some(Body::Hello(h))) => {
                let peer = handshake::accept_hello(&h)?;
                let transcript = Transcript {
                    nonce_i: &h.nonce,
                    nonce_a: &self.nonce,
                    node_i: &h.node,
                    node_a: &self.config.node,
                };
                let proof = transcript.prove(self.config.secret.as_deref(), Prover::Acceptor);
                let welcome = handshake::welcome(&self.config, &self.nonce, proof);
                self.out.push_control(Body::Welcome(welcome));
                self.state = State::AwaitAuth {
                    welcome_sent: now,
                    nonce_i: h.nonce,
                    peer,
                };
                Ok(())
            }
            (State::AwaitWelcome, Some(Body::Welcome(w))) => {
                let peer = handshake::accept_welcome(&w)?;
                let transcript = Transcript {
                    nonce_i: &self.nonce,
                    nonce_a: &w.nonce,
                    node_i: &self.config.node,
                    node_a: &w.node,
                };
                transcript.verify_any(&self.config, Prover::Acceptor, &w.proof)?;
                let proof = transcript.prove(self.config.secret.as_deref(), Prover::Initiator);
                self.out.push_control(Body::Auth(Auth { proof }));
                let rtt = now.saturating_duration_since(self.created);
                self.establish(peer, rtt, now);
                Ok(())
            }
            (State::AwaitAuth { .. }, Some(Body::Auth(a))) => {
                let State::AwaitAuth {
                    welcome_sent,
                    nonce_i,
                    peer,
                } = std::mem::replace(&mut self.state, State::AwaitHello)
                else {
                    return Err(ProtoError::Handshake("protocol"));
                };
                let transcript = Transcript {
                    nonce_i: &nonce_i,
                    nonce_a: &self.nonce,
                    node_i: &peer.node,
                    node_a: &self.config.node,
                };
                transcript.verify_any(&self.config, Prover::Initiator, &a.proof)?;
                let rtt = now.saturating_duration_since(welcome_sent);
                self.establish(peer, rtt, now);
                Ok(())
            }
            _ => Err(ProtoError::Handshake("protocol")),
        }
    }

    fn establish(&mut self, peer: PeerInfo, rtt: Duration, now: Instant) {
        self.max_chunk =
            (peer.max_frame.saturating_sub(DATA_OVERHEAD) as usize).min(MAX_DATA_PAYLOAD);
        self.out.add_conn_credit(peer.conn_window);
        self.rtt = Some(rtt);
        if !self.config.ping_interval.is_zero() {
            self.next_ping = now.checked_add(self.config.ping_interval);
        }
        self.state = State::Established;
        self.peer = Some(peer.clone());
        self.events.push_back(Event::Established { peer, rtt });
    }
}

/// A GoAway during the handshake is the peer giving up; its reason is the peer's error label.
fn peer_abort_reason(reason: &str) -> &'static str {
    match reason {
        "auth" => "auth",
        "version" => "version",
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
        assert_eq!(peer_abort_reason("checksum"), "protocol");
    }
}
