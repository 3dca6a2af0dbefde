//! A ticket as an initiator saves it, so that a node restarted with `state_dir` resumes its
//! transports with 0-RTT instead of paying a full handshake for the first sessions after the
//! restart (CONTRACT section 10). The acceptor side's saved state is
//! [`crate::Resumption::to_bytes`]; this is the other end's.
//!
//! The bytes hold the resumption secret, which proves this node to the peer until the ticket
//! expires: the node writes them to a file only it may read.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::config::PeerInfo;
use crate::ticket::{Reader, Ticket, MAX_TICKET_LEN, MAX_TICKET_LIFETIME};
use crate::trust::Trust;

/// Starts every encoded ticket, so that a file of another version is refused whole.
const MAGIC: &[u8; 4] = b"bwt1";
/// Labels and capabilities of the peer kept with a ticket, at most: what a handshake frame can
/// carry is bounded by its size, and a saved file is checked against the same bounds.
const MAX_LIST: usize = 1024;

impl Ticket {
    /// This ticket with `remaining` of its lifetime left, as bytes for a state file.
    pub fn to_bytes(&self, remaining: Duration) -> Vec<u8> {
        let mut v = Vec::with_capacity(128 + self.ticket.len());
        v.extend_from_slice(MAGIC);
        put_bytes(&mut v, &self.ticket);
        v.extend_from_slice(&self.secret);
        v.extend_from_slice(&(remaining.as_secs() as u32).to_be_bytes());
        let p = &self.peer;
        put_bytes(&mut v, p.node.as_bytes());
        put_bytes(&mut v, p.namespace.as_bytes());
        v.extend_from_slice(&(p.labels.len().min(MAX_LIST) as u16).to_be_bytes());
        for (k, val) in p.labels.iter().take(MAX_LIST) {
            put_bytes(&mut v, k.as_bytes());
            put_bytes(&mut v, val.as_bytes());
        }
        v.extend_from_slice(&(p.capabilities.len().min(MAX_LIST) as u16).to_be_bytes());
        for c in p.capabilities.iter().take(MAX_LIST) {
            put_bytes(&mut v, c.as_bytes());
        }
        for n in [p.max_frame, p.stream_window, p.conn_window] {
            v.extend_from_slice(&n.to_be_bytes());
        }
        match &self.trust {
            Trust::Secret => v.push(0),
            Trust::Token { id, node } => {
                v.push(1);
                put_bytes(&mut v, id.as_bytes());
                put_bytes(&mut v, node.as_bytes());
            }
            Trust::Anonymous => v.push(2),
        }
        v
    }

    /// A ticket saved by [`Ticket::to_bytes`], its lifetime counted from now; `None` for
    /// anything else (damaged, another version, a lifetime over the hour a ticket may live).
    pub fn from_bytes(b: &[u8]) -> Option<Ticket> {
        let mut r = Reader(b);
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let ticket = r.bytes()?;
        if ticket.len() > MAX_TICKET_LEN {
            return None;
        }
        let secret = r.array()?;
        let lifetime = Duration::from_secs(u32::from_be_bytes(r.array()?).into());
        if lifetime > MAX_TICKET_LIFETIME {
            return None;
        }
        let node = r.string()?;
        let namespace = r.string()?;
        let mut labels = BTreeMap::new();
        for _ in 0..r.count()? {
            let k = r.string()?;
            labels.insert(k, r.string()?);
        }
        let mut capabilities = Vec::new();
        for _ in 0..r.count()? {
            capabilities.push(r.string()?);
        }
        let [max_frame, stream_window, conn_window] =
            [(); 3].map(|_| r.array().map(u32::from_be_bytes));
        let trust = match r.take(1)?[0] {
            0 => Trust::Secret,
            1 => Trust::Token {
                id: r.string()?,
                node: r.string()?,
            },
            2 => Trust::Anonymous,
            _ => return None,
        };
        if !r.0.is_empty() {
            return None;
        }
        Some(Ticket {
            ticket: Bytes::from(ticket),
            secret,
            lifetime,
            peer: PeerInfo {
                node,
                namespace,
                labels,
                capabilities,
                max_frame: max_frame?,
                stream_window: stream_window?,
                conn_window: conn_window?,
            },
            trust,
        })
    }
}

/// Writes `b` with its length in two bytes; every field written here is far shorter.
fn put_bytes(v: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u16::MAX as usize)];
    v.extend_from_slice(&(b.len() as u16).to_be_bytes());
    v.extend_from_slice(b);
}

impl Reader<'_> {
    /// A list's length, refused above [`MAX_LIST`] before anything is read for it.
    fn count(&mut self) -> Option<usize> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        (n <= MAX_LIST).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(trust: Trust) -> Ticket {
        Ticket {
            ticket: Bytes::from_static(&[7; 90]),
            secret: [3; 32],
            lifetime: Duration::from_secs(3600),
            peer: PeerInfo {
                node: "egress".into(),
                namespace: "prod".into(),
                labels: [("app".to_string(), "chat".to_string())].into(),
                capabilities: vec!["mux".into()],
                max_frame: 70_000,
                stream_window: 256 * 1024,
                conn_window: 16 << 20,
            },
            trust,
        }
    }

    #[test]
    fn a_saved_ticket_comes_back_with_what_was_left_of_its_life() {
        for trust in [
            Trust::Secret,
            Trust::Anonymous,
            Trust::Token {
                id: "t1".into(),
                node: "egress".into(),
            },
        ] {
            let t = ticket(trust);
            let back = Ticket::from_bytes(&t.to_bytes(Duration::from_secs(1200))).unwrap();
            assert_eq!(back.lifetime, Duration::from_secs(1200));
            assert_eq!(
                back,
                Ticket {
                    lifetime: back.lifetime,
                    ..t
                }
            );
        }
    }

    #[test]
    fn damaged_bytes_are_refused_not_trusted() {
        let b = ticket(Trust::Secret).to_bytes(Duration::from_secs(60));
        for cut in 0..b.len() {
            assert!(Ticket::from_bytes(&b[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(Ticket::from_bytes(&longer).is_none());
        let mut other = b.clone();
        other[0] = b'x';
        assert!(Ticket::from_bytes(&other).is_none());
        // A lifetime over the hour a ticket may live is not believed.
        let long = ticket(Trust::Secret).to_bytes(Duration::from_secs(7200));
        assert!(Ticket::from_bytes(&long).is_none());
    }
}
