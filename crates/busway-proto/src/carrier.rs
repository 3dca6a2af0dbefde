//! A carrier: one transport's stream of a multi-link session, as its connection sees it.
//!
//! A carrier's Data frames carry the *session's* offsets, which jump on one transport (the
//! session's blocks alternate between transports, and what a lost transport had not delivered
//! is sent again on another), so what arrived is kept as runs of contiguous bytes with their
//! offsets instead of one byte queue. The offsets are checked against the session (its window,
//! its fin, duplicates) by [`crate::MultiStream`], which takes the pieces out promptly; here
//! only what the connection can judge alone is checked, and the bookkeeping is bounded: bytes
//! by the transport window, runs by [`max_runs`].

use std::collections::VecDeque;

use bytes::Bytes;

use crate::config::Config;
use crate::recv::RecvBuf;

/// The capability a node announces in `Info.capabilities` when it speaks multi-link sessions.
pub const CAP_MULTILINK: &str = "multilink";

/// Bytes of a session key (`Link.session`).
pub const LINK_KEY_LEN: usize = 16;

/// A multi-link session's bytes go to its transports in blocks of this many, by offset: a block
/// stays on the transport it started on (unless that one dies), the next one goes to the next
/// transport. So every live transport carries data, and one transport's share of a window is
/// a few long runs, not many short ones.
pub const BLOCK: u64 = 64 * 1024;

/// The capabilities we announce.
pub(crate) fn capabilities(config: &Config) -> Vec<String> {
    if config.multilink {
        vec![CAP_MULTILINK.to_owned()]
    } else {
        Vec::new()
    }
}

/// Discontiguous runs a carrier or a session's reassembly may hold with a receive window of
/// `window` bytes. An honest sender has at most a window of new bytes and a window sent again
/// outstanding, each a few blocks per transport; more runs than this is a peer fragmenting on
/// purpose to make us keep bookkeeping per byte.
pub fn max_runs(window: u32) -> usize {
    (4 * u64::from(window) / BLOCK) as usize + 64
}

/// Session bytes at a session offset, and whether the session's fin follows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub payload: Bytes,
    pub fin: bool,
}

impl Piece {
    /// The offset just past the piece.
    pub fn end(&self) -> u64 {
        self.offset + self.payload.len() as u64
    }
}

#[derive(Debug)]
struct Run {
    offset: u64,
    len: u64,
    fin: bool,
}

/// What arrived on a carrier and the session has not taken yet, plus the latest Ack the peer
/// sent on it.
#[derive(Debug, Default)]
pub(crate) struct CarrierRecv {
    /// The payload bytes of every run, in run order (small payloads copied together).
    bytes: RecvBuf,
    runs: VecDeque<Run>,
    /// The highest acknowledgement received and not taken yet.
    pub ack: Option<(u64, bool)>,
}

impl CarrierRecv {
    /// Queues a received piece. An `Err` is a fatal protocol violation: an offset that
    /// overflows, or more discontiguous runs than `max`.
    pub fn push(
        &mut self,
        offset: u64,
        payload: Bytes,
        fin: bool,
        max: usize,
    ) -> Result<(), String> {
        let len = payload.len() as u64;
        if offset.checked_add(len).is_none() {
            return Err(format!("data at offset {offset} overflows"));
        }
        match self.runs.back_mut() {
            Some(r) if !r.fin && r.offset + r.len == offset => {
                r.len += len;
                r.fin = fin;
            }
            _ if len == 0 && !fin => return Ok(()),
            _ => {
                if self.runs.len() >= max {
                    return Err(format!(
                        "more than {max} discontiguous runs of data queued on a carrier"
                    ));
                }
                self.runs.push_back(Run { offset, len, fin });
            }
        }
        self.bytes.push(payload);
        Ok(())
    }

    /// The oldest bytes still queued, at most `max` of them, as one piece; `None` when empty.
    pub fn pop(&mut self, max: usize) -> Option<Piece> {
        let run = self.runs.front_mut()?;
        let want = (run.len.min(max.max(1) as u64)) as usize;
        let payload = if want == 0 {
            Bytes::new()
        } else {
            // The buffer holds exactly the runs' bytes, in order: it has at least `want`.
            self.bytes.pop(want).unwrap_or_default()
        };
        let n = payload.len() as u64;
        let piece = Piece {
            offset: run.offset,
            payload,
            fin: run.fin && n == run.len,
        };
        run.offset += n;
        run.len -= n;
        if run.len == 0 {
            self.runs.pop_front();
        }
        Some(piece)
    }

    /// Payload bytes queued.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Forgets the queued bytes; returns how many there were.
    pub fn clear(&mut self) -> usize {
        self.runs.clear();
        self.bytes.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: usize, v: u8) -> Bytes {
        Bytes::from(vec![v; n])
    }

    #[test]
    fn contiguous_pieces_make_one_run_and_come_out_with_their_offsets() {
        let mut c = CarrierRecv::default();
        for i in 0..1000u64 {
            c.push(i, b(1, i as u8), false, 2).unwrap();
        }
        c.push(5000, b(3, 9), true, 2).unwrap();
        assert_eq!(c.runs.len(), 2);
        assert_eq!(c.len(), 1003);
        let p = c.pop(600).unwrap();
        assert_eq!((p.offset, p.payload.len(), p.fin), (0, 600, false));
        assert_eq!(p.payload[599], (599u32 % 256) as u8);
        let p = c.pop(usize::MAX).unwrap();
        assert_eq!((p.offset, p.payload.len(), p.fin), (600, 400, false));
        let p = c.pop(usize::MAX).unwrap();
        assert_eq!(
            (p.offset, &p.payload[..], p.fin),
            (5000, &[9, 9, 9][..], true)
        );
        assert!(c.pop(1).is_none());
    }

    #[test]
    fn runs_are_capped_and_overflow_refused() {
        let mut c = CarrierRecv::default();
        c.push(0, b(1, 0), false, 2).unwrap();
        c.push(10, b(1, 0), false, 2).unwrap();
        assert!(c.push(20, b(1, 0), false, 2).is_err());
        assert!(c.push(u64::MAX, b(2, 0), false, 100).is_err());
        assert_eq!(c.clear(), 2);
        assert!(c.pop(1).is_none());
    }

    #[test]
    fn an_empty_fin_is_a_piece_and_an_empty_non_fin_is_nothing() {
        let mut c = CarrierRecv::default();
        c.push(7, Bytes::new(), false, 4).unwrap();
        assert!(c.pop(1).is_none());
        c.push(7, Bytes::new(), true, 4).unwrap();
        assert_eq!(
            c.pop(1),
            Some(Piece {
                offset: 7,
                payload: Bytes::new(),
                fin: true
            })
        );
        // Bytes after a fin start a run of their own (retransmits below it may follow).
        c.push(0, b(2, 1), true, 4).unwrap();
        c.push(2, b(2, 1), false, 4).unwrap();
        assert_eq!(c.runs.len(), 2);
    }

    #[test]
    fn max_runs_grows_with_the_window() {
        assert_eq!(max_runs(256 * 1024), 16 + 64);
        assert!(max_runs(u32::MAX) > max_runs(1 << 20));
    }
}
