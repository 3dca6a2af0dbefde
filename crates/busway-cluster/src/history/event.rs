//! One event of the cluster's history, and its bytes.
//!
//! Only an owner records events, so one writer numbers them in the common case; after a
//! partition two owners will have recorded events of the same era, and both sets must survive
//! the heal. An event therefore names its recorder, and its identity is the whole record: two
//! owners' events never collide, and a copy that comes back by another path is the same value.

use crate::wire::buf::{Malformed, Reader, Writer};
use crate::wire::MAX_NAME;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A member (this incarnation of a node) became part of the cluster.
    Join,
    /// It left: said goodbye, or its death was confirmed by probes.
    Leave,
    /// It took the service address.
    Takeover,
}

impl EventKind {
    /// The name `GET /v1/cluster` shows.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Join => "join",
            EventKind::Leave => "leave",
            EventKind::Takeover => "takeover",
        }
    }

    fn code(self) -> u8 {
        match self {
            EventKind::Join => 0,
            EventKind::Leave => 1,
            EventKind::Takeover => 2,
        }
    }

    fn from_code(c: u8) -> Result<EventKind, Malformed> {
        match c {
            0 => Ok(EventKind::Join),
            1 => Ok(EventKind::Leave),
            2 => Ok(EventKind::Takeover),
            _ => Err(Malformed("event kind")),
        }
    }
}

/// One history event. The derived order (era, time, recorder, …) is the history's order, and
/// an event's `seq` is its place within its era in that order, counted from 1.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Event {
    pub era: u32,
    /// Unix time in milliseconds, by the recorder's clock; strictly increasing per recorder, so
    /// its own events keep the order it recorded them in.
    pub at_ms: u64,
    /// The owner that recorded it.
    pub recorder: String,
    pub kind: EventKind,
    /// The node it is about.
    pub node: String,
    /// That node's incarnation.
    pub incarnation: u32,
}

/// Most bytes one encoded event takes.
pub const MAX_EVENT_LEN: usize = 4 + 8 + 1 + MAX_NAME + 1 + 1 + MAX_NAME + 4;

impl Event {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.era);
        w.u64(self.at_ms);
        w.text(&self.recorder);
        w.u8(self.kind.code());
        w.text(&self.node);
        w.u32(self.incarnation);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Event, Malformed> {
        Ok(Event {
            era: r.u32("event era")?,
            at_ms: r.u64("event time")?,
            recorder: r.text(MAX_NAME, "event recorder")?,
            kind: EventKind::from_code(r.u8("event kind")?)?,
            node: r.text(MAX_NAME, "event node")?,
            incarnation: r.u32("event incarnation")?,
        })
    }

    /// Bytes the event takes on the wire and in a snapshot.
    pub fn encoded_len(&self) -> usize {
        4 + 8 + 1 + self.recorder.len().min(255) + 1 + 1 + self.node.len().min(255) + 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at_ms: u64, kind: EventKind) -> Event {
        Event {
            era: 2,
            at_ms,
            recorder: "a".into(),
            kind,
            node: "b".into(),
            incarnation: 3,
        }
    }

    #[test]
    fn round_trip_and_length() {
        let e = ev(1_700_000_000_000, EventKind::Takeover);
        let mut w = Writer::new();
        e.write(&mut w);
        assert_eq!(w.buf.len(), e.encoded_len());
        let mut r = Reader::new(&w.buf);
        assert_eq!(Event::read(&mut r), Ok(e));
        assert!(r.is_empty());
    }

    #[test]
    fn order_is_era_then_time() {
        let mut a = ev(5, EventKind::Leave);
        let b = ev(6, EventKind::Join);
        assert!(a < b);
        a.era = 3;
        assert!(a > b);
    }

    #[test]
    fn unknown_kind_is_malformed() {
        let mut w = Writer::new();
        ev(1, EventKind::Join).write(&mut w);
        let kind_at = 4 + 8 + 2;
        w.buf[kind_at] = 9;
        assert!(Event::read(&mut Reader::new(&w.buf)).is_err());
    }
}
