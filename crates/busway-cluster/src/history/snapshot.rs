//! What a node keeps in `state_dir`: its incarnation and the history, as one checked file.
//!
//! ```text
//! "BWCH" | version u8 | incarnation u32 | era u32 | count u32 | events | SHA-256[..8]
//! ```
//!
//! The driver writes it whenever the history changes and reads it at start, taking
//! `incarnation + 1` as the new incarnation. A file that is cut short, altered or larger than
//! any history can be is an error, never a panic: the driver then starts with an empty history
//! (and says so) rather than refusing to start.

use ring::digest::{digest, SHA256};

use super::{Event, History, MAX_EVENTS, MAX_EVENT_LEN};
use crate::wire::buf::{Malformed, Reader, Writer};

const MAGIC: [u8; 4] = *b"BWCH";
const VERSION: u8 = 1;
const CHECK_LEN: usize = 8;

/// Largest file [`Snapshot::from_bytes`] reads.
pub const MAX_SNAPSHOT_LEN: usize = 4 + 1 + 4 + 4 + 4 + MAX_EVENTS * MAX_EVENT_LEN + CHECK_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("cluster state is {0} bytes, more than the {MAX_SNAPSHOT_LEN} a history can take")]
    TooLarge(usize),
    #[error("cluster state fails its check (cut short or altered)")]
    Check,
    #[error("cluster state has a different version ({0})")]
    Version(u8),
    #[error("cluster state holds {0} events, more than {MAX_EVENTS}")]
    TooMany(u32),
    #[error("cluster state is malformed: {0}")]
    Malformed(Malformed),
}

/// A node's persisted cluster state.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The incarnation of the node that saved it.
    pub incarnation: u32,
    pub history: History,
}

impl Snapshot {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.buf.extend_from_slice(&MAGIC);
        w.u8(VERSION);
        w.u32(self.incarnation);
        w.u32(self.history.era());
        w.u32(self.history.len() as u32);
        for e in self.history.events() {
            e.write(&mut w);
        }
        let check = digest(&SHA256, &w.buf);
        w.buf.extend_from_slice(&check.as_ref()[..CHECK_LEN]);
        w.buf
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        if bytes.len() > MAX_SNAPSHOT_LEN {
            return Err(SnapshotError::TooLarge(bytes.len()));
        }
        if bytes.len() < CHECK_LEN + MAGIC.len() {
            return Err(SnapshotError::Check);
        }
        let (body, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        if digest(&SHA256, body).as_ref()[..CHECK_LEN] != *check {
            return Err(SnapshotError::Check);
        }
        let mut r = Reader::new(body);
        let bad = SnapshotError::Malformed;
        if r.take(4, "magic").map_err(bad)? != MAGIC {
            return Err(SnapshotError::Malformed(Malformed("magic")));
        }
        let version = r.u8("version").map_err(bad)?;
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        let incarnation = r.u32("incarnation").map_err(bad)?;
        let era = r.u32("era").map_err(bad)?;
        let n = r.u32("count").map_err(bad)?;
        if n as usize > MAX_EVENTS {
            return Err(SnapshotError::TooMany(n));
        }
        let mut events = Vec::with_capacity(n as usize);
        for _ in 0..n {
            events.push(Event::read(&mut r).map_err(bad)?);
        }
        if !r.is_empty() {
            return Err(SnapshotError::Malformed(Malformed("trailing bytes")));
        }
        let mut history = History::new();
        history.note_era(era);
        history.merge(events);
        Ok(Snapshot {
            incarnation,
            history,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{test_event, EventKind};

    fn sample() -> Snapshot {
        let mut history = History::new();
        history.merge([
            test_event(3, 10, EventKind::Join, "a"),
            test_event(3, 11, EventKind::Takeover, "a"),
        ]);
        history.note_era(4);
        Snapshot {
            incarnation: 7,
            history,
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let back = Snapshot::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.history.era(), 4);
        let empty = Snapshot::default();
        assert_eq!(Snapshot::from_bytes(&empty.to_bytes()).unwrap(), empty);
    }

    #[test]
    fn damage_is_an_error() {
        let b = sample().to_bytes();
        for cut in 0..b.len() {
            assert!(Snapshot::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert!(Snapshot::from_bytes(&bad).is_err(), "byte {i} altered");
        }
        assert_eq!(
            Snapshot::from_bytes(&vec![0; MAX_SNAPSHOT_LEN + 1]),
            Err(SnapshotError::TooLarge(MAX_SNAPSHOT_LEN + 1))
        );
    }

    #[test]
    fn a_count_over_the_cap_is_refused_before_reading() {
        let mut w = Writer::new();
        w.buf.extend_from_slice(&MAGIC);
        w.u8(VERSION);
        w.u32(1);
        w.u32(1);
        w.u32(u32::MAX);
        let check = digest(&SHA256, &w.buf);
        w.buf.extend_from_slice(&check.as_ref()[..CHECK_LEN]);
        assert_eq!(
            Snapshot::from_bytes(&w.buf),
            Err(SnapshotError::TooMany(u32::MAX))
        );
    }
}
