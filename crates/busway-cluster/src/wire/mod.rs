//! The cluster's datagrams: adverts on the group, probes and history transfers by unicast.
//!
//! ```text
//! "BWCL" | version u8 | kind u8 | cluster text | node text | incarnation u32 | seq u64 | era u32
//!        | body | HMAC-SHA256 tag (32 bytes) over everything before it
//! ```
//!
//! Integers are big endian; a text is a one-byte length and UTF-8. A datagram is at most
//! [`MAX_DATAGRAM`] bytes, so every message fits one Ethernet frame and nothing is ever
//! reassembled. docs/CLUSTER.md has the bodies field by field.

pub(crate) mod buf;
mod seal;

pub use buf::Malformed;
pub use seal::{Rejection, Sealer, TAG_LEN};

use crate::history::Event;
use buf::{Reader, Writer};

/// The first bytes of every datagram: another protocol on the same group is malformed at once.
pub const MAGIC: [u8; 4] = *b"BWCL";
/// Wire version; a datagram of another version is rejected as malformed.
pub const WIRE_VERSION: u8 = 1;
/// Largest datagram sent or accepted.
pub const MAX_DATAGRAM: usize = 1400;
/// Longest node name and cluster id.
pub const MAX_NAME: usize = 64;
/// Longest bus address (a URL) in an advert.
pub const MAX_BUS_ADDRESS: usize = 200;
/// Most events one history chunk may carry, whatever their size.
pub const MAX_CHUNK_EVENTS: usize = 64;
/// Longest header: magic, version, kind, two texts, incarnation, seq, era.
pub const MAX_HEADER_LEN: usize = 4 + 1 + 1 + 2 * (1 + MAX_NAME) + 4 + 8 + 4;
/// Fixed part of a history chunk's body (everything but its events).
pub const CHUNK_FIXED_LEN: usize = 4 + 2 + 1 + 1 + 4 + 8 + 2;

/// What a member says it is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Booting: listening for a cluster before it takes part.
    Joining,
    Member,
    /// Holds the service address.
    Owner,
    /// Shutting down cleanly: drop it now instead of waiting for `dead_after`.
    Leaving,
}

impl Role {
    fn code(self) -> u8 {
        match self {
            Role::Joining => 0,
            Role::Member => 1,
            Role::Owner => 2,
            Role::Leaving => 3,
        }
    }

    fn from_code(c: u8) -> Result<Role, Malformed> {
        Ok(match c {
            0 => Role::Joining,
            1 => Role::Member,
            2 => Role::Owner,
            3 => Role::Leaving,
            _ => return Err(Malformed("role")),
        })
    }
}

/// Fields every message carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub cluster: String,
    pub node: String,
    pub incarnation: u32,
    /// Per sender, strictly increasing over all its messages and across its restarts: what
    /// replays are told apart by.
    pub seq: u64,
    /// The sender's era; 0 while it has found no cluster yet.
    pub era: u32,
}

/// A member's state, multicast every advert interval (and in a probe reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub role: Role,
    pub priority: u32,
    /// Events in the sender's history: the rank's second key.
    pub events: u32,
    /// A digest of the sender's history, so members notice that theirs differs.
    pub digest: u64,
    /// The owner the sender follows; empty for none.
    pub owner: String,
    /// The sender's bus URL.
    pub bus: String,
    /// The sender's advert interval, so receivers time its silence by its own clock rate.
    pub interval_ms: u32,
}

/// "Are you alive?", sent straight to a suspected member before anyone acts on its silence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The node meant, so an address reused by another node does not answer for it.
    pub target: String,
    pub nonce: u64,
}

/// The answer to a [`Probe`]: the nonce back, and the replier's advert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReply {
    pub nonce: u64,
    pub advert: Advert,
}

/// "Send me your history after this event" (all of it for `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRequest {
    pub id: u32,
    pub after: Option<Event>,
}

/// Part of a history page: events in history order. `id` 0 is a push nobody asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryChunk {
    pub id: u32,
    /// Index of this chunk in its page.
    pub part: u16,
    /// The page's last chunk.
    pub last: bool,
    /// More events follow the page: ask again after its last event.
    pub more: bool,
    /// The sender's whole history: its length and digest when it sent this.
    pub total: u32,
    pub digest: u64,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Advert(Advert),
    Probe(Probe),
    ProbeReply(ProbeReply),
    HistoryRequest(HistoryRequest),
    History(HistoryChunk),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Advert(_) => 1,
            Body::Probe(_) => 2,
            Body::ProbeReply(_) => 3,
            Body::HistoryRequest(_) => 4,
            Body::History(_) => 5,
        }
    }
}

fn write_advert(w: &mut Writer, a: &Advert) {
    w.u8(a.role.code());
    w.u32(a.priority);
    w.u32(a.events);
    w.u64(a.digest);
    w.text(&a.owner);
    w.text(&a.bus);
    w.u32(a.interval_ms);
}

fn read_advert(r: &mut Reader<'_>) -> Result<Advert, Malformed> {
    Ok(Advert {
        role: Role::from_code(r.u8("role")?)?,
        priority: r.u32("priority")?,
        events: r.u32("events")?,
        digest: r.u64("digest")?,
        owner: r.text(MAX_NAME, "owner")?,
        bus: r.text(MAX_BUS_ADDRESS, "bus address")?,
        interval_ms: r.u32("interval")?,
    })
}

/// The message's bytes without the tag.
pub(crate) fn encode_unsigned(m: &Message) -> Vec<u8> {
    let mut w = Writer::new();
    w.buf.extend_from_slice(&MAGIC);
    w.u8(WIRE_VERSION);
    w.u8(m.body.kind());
    let h = &m.header;
    w.text(&h.cluster);
    w.text(&h.node);
    w.u32(h.incarnation);
    w.u64(h.seq);
    w.u32(h.era);
    match &m.body {
        Body::Advert(a) => write_advert(&mut w, a),
        Body::Probe(p) => {
            w.text(&p.target);
            w.u64(p.nonce);
        }
        Body::ProbeReply(p) => {
            w.u64(p.nonce);
            write_advert(&mut w, &p.advert);
        }
        Body::HistoryRequest(q) => {
            w.u32(q.id);
            w.bool(q.after.is_some());
            if let Some(e) = &q.after {
                e.write(&mut w);
            }
        }
        Body::History(c) => {
            w.u32(c.id);
            w.u16(c.part);
            w.bool(c.last);
            w.bool(c.more);
            w.u32(c.total);
            w.u64(c.digest);
            w.u16(c.events.len() as u16);
            for e in &c.events {
                e.write(&mut w);
            }
        }
    }
    w.buf
}

/// Parses the bytes before the tag. Everything must be consumed: trailing bytes are malformed,
/// so one message has exactly one encoding and a signature covers exactly what is read.
pub(crate) fn decode_unsigned(bytes: &[u8]) -> Result<Message, Malformed> {
    let mut r = Reader::new(bytes);
    if r.take(4, "magic")? != MAGIC {
        return Err(Malformed("magic"));
    }
    if r.u8("version")? != WIRE_VERSION {
        return Err(Malformed("version"));
    }
    let kind = r.u8("kind")?;
    let header = Header {
        cluster: r.text(MAX_NAME, "cluster")?,
        node: r.text(MAX_NAME, "node")?,
        incarnation: r.u32("incarnation")?,
        seq: r.u64("seq")?,
        era: r.u32("era")?,
    };
    if header.node.is_empty() {
        return Err(Malformed("node"));
    }
    let body = match kind {
        1 => Body::Advert(read_advert(&mut r)?),
        2 => Body::Probe(Probe {
            target: r.text(MAX_NAME, "target")?,
            nonce: r.u64("nonce")?,
        }),
        3 => Body::ProbeReply(ProbeReply {
            nonce: r.u64("nonce")?,
            advert: read_advert(&mut r)?,
        }),
        4 => Body::HistoryRequest(HistoryRequest {
            id: r.u32("request id")?,
            after: if r.bool("after")? {
                Some(Event::read(&mut r)?)
            } else {
                None
            },
        }),
        5 => {
            let id = r.u32("request id")?;
            let part = r.u16("part")?;
            let last = r.bool("last")?;
            let more = r.bool("more")?;
            let total = r.u32("total")?;
            let digest = r.u64("digest")?;
            let n = usize::from(r.u16("event count")?);
            if n > MAX_CHUNK_EVENTS {
                return Err(Malformed("event count"));
            }
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                events.push(Event::read(&mut r)?);
            }
            Body::History(HistoryChunk {
                id,
                part,
                last,
                more,
                total,
                digest,
                events,
            })
        }
        _ => return Err(Malformed("kind")),
    };
    if !r.is_empty() {
        return Err(Malformed("trailing bytes"));
    }
    Ok(Message { header, body })
}
