//! Datagrams in: checked (size, parse, cluster, signature, replay), then applied.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Cluster, State, MAX_MEMBERS};
use crate::member::Member;
use crate::metrics::RejectReason;
use crate::output::Notice;
use crate::wire::{Advert, Body, Header, Probe, ProbeReply, Rejection, Role};

impl Cluster {
    /// A datagram from the group socket (multicast or unicast), from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.state == State::Left {
            return;
        }
        let m = match self.sealer.open(datagram) {
            Ok(m) => m,
            Err(e) => {
                let reason = match &e {
                    Rejection::Malformed(_) => RejectReason::Malformed,
                    Rejection::Cluster(_) => RejectReason::Cluster,
                    Rejection::Signature => RejectReason::Signature,
                };
                self.reject(reason, from, e.to_string(), now);
                return;
            }
        };
        // Our own multicast, looped back by the kernel.
        if m.header.node == self.cfg.node {
            return;
        }
        if !self.replay.accept(&m.header.node, m.header.seq) {
            let detail = format!("{} sent seq {} again", m.header.node, m.header.seq);
            self.reject(RejectReason::Replay, from, detail, now);
            return;
        }
        match m.body {
            Body::Advert(a) => self.on_advert(now, from, &m.header, a),
            Body::ProbeReply(ProbeReply { advert, .. }) => {
                self.on_advert(now, from, &m.header, advert)
            }
            Body::Probe(p) => self.on_probe(now, from, &m.header, p),
            Body::HistoryRequest(q) => self.on_history_request(from, q),
            Body::History(c) => self.on_chunk(now, &m.header, c),
        }
        self.settle(now);
    }

    fn on_probe(&mut self, now: Instant, from: SocketAddr, h: &Header, p: Probe) {
        if p.target != self.cfg.node {
            return;
        }
        if let Some(m) = self.members.get_mut(&h.node) {
            if m.incarnation == h.incarnation {
                m.heard(now);
            }
        }
        let advert = self.advert();
        self.send(
            from,
            Body::ProbeReply(ProbeReply {
                nonce: p.nonce,
                advert,
            }),
        );
    }

    fn on_advert(&mut self, now: Instant, from: SocketAddr, h: &Header, a: Advert) {
        if a.role == Role::Leaving {
            if self.members.contains_key(&h.node) {
                self.member_gone(now, &h.node, true);
            }
            return;
        }
        self.tombstones.remove(&h.node);
        let joining = a.role == Role::Joining;
        let claims_owner = a.role == Role::Owner;
        // Whether this is a boot we have not answered yet: a new node, a new incarnation, or
        // a member that restarted into discovery.
        let mut fresh_boot = joining;
        match self.members.get_mut(&h.node) {
            Some(m) => {
                fresh_boot &= m.advert.role != Role::Joining || m.incarnation != h.incarnation;
                if m.incarnation != h.incarnation {
                    let old = m.incarnation;
                    m.incarnation = h.incarnation;
                    self.restarted(now, &h.node, old);
                    self.notice(Notice::MemberUp {
                        node: h.node.clone(),
                        incarnation: h.incarnation,
                    });
                }
                let m = self.members.get_mut(&h.node).expect("present");
                m.addr = from;
                m.era = h.era;
                m.advert = a;
                m.heard(now);
            }
            None => {
                if self.members.len() >= MAX_MEMBERS {
                    return;
                }
                let m = Member::new(&h.node, from, h.incarnation, h.era, a, now);
                self.members.insert(h.node.clone(), m);
                self.notice(Notice::MemberUp {
                    node: h.node.clone(),
                    incarnation: h.incarnation,
                });
                // A member that is not booting comes back from the other side of a partition,
                // where another owner may have held the address and pointed the gateway's ARP
                // cache at itself. It may have yielded before its owner advert reached this
                // node, so no conflict is ever heard: announce again anyway.
                if !joining && self.state == State::Owner {
                    self.start_garp(now);
                }
            }
        }
        // A booting node hears the owner at once instead of after an interval.
        if fresh_boot && self.state == State::Owner {
            let advert = self.advert();
            self.send(from, Body::Advert(advert));
        }
        match self.state {
            State::Joining { .. } if claims_owner => self.finish_join(now),
            State::Member => self.follow(now, &h.node),
            _ => {}
        }
    }

    /// A member restarted (new incarnation): its old one has left.
    fn restarted(&mut self, now: Instant, node: &str, old: u32) {
        if self.state == State::Owner {
            self.record_leave(now, node, old);
        } else {
            self.departed.push((node.to_owned(), old));
        }
    }
}
