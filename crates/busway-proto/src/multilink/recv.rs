//! The receiving half of a multi-link session: pieces from every transport put back in order
//! by offset, duplicates dropped, and the acknowledgements that both free the sender's
//! retransmit buffer and grant it credit.
//!
//! An acknowledgement says what the application *released*, so it is also the window: the
//! sender may have bytes below `acked + window`, and a piece beyond the last acknowledgement
//! sent plus the window is a violation. What this half holds — in order and unread, read and
//! unreleased, and out of order — is therefore at most one window, whatever the peer does.
//! Out-of-order bytes are kept as runs of contiguous bytes (contiguous pieces coalesce), at
//! most [`crate::max_runs`] of them.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};

use crate::carrier::{max_runs, Piece};
use crate::error::StreamError;
use crate::recv::RecvBuf;

/// An acknowledgement the half wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AckOut {
    pub offset: u64,
    pub fin: bool,
    /// On every live transport rather than one: the last one of the session, or one repeated
    /// after a transport (maybe with acknowledgements on it) was lost.
    pub everywhere: bool,
}

/// Contiguous bytes received above the in-order point.
#[derive(Debug)]
struct Run {
    len: u64,
    buf: RecvBuf,
}

#[derive(Debug)]
pub(crate) struct RecvHalf {
    /// Our window: bytes the peer may have beyond our last acknowledgement.
    window: u64,
    /// Every byte below this arrived.
    next: u64,
    /// In order, unread: `[next - ready.len(), next)`.
    ready: RecvBuf,
    /// Read by the application, not released yet.
    unreleased: u64,
    /// Released by the application: every byte below it.
    released: u64,
    /// The highest acknowledgement queued: the peer may send below `ack_sent + window`.
    ack_sent: u64,
    /// Runs above `next`, by start; disjoint and never touching.
    ooo: BTreeMap<u64, Run>,
    max_runs: usize,
    /// The session's final size, once a fin arrived.
    fin_at: Option<u64>,
    fin_read: bool,
    /// An acknowledgement with fin was queued.
    fin_acked: bool,
    /// Acknowledge again even without news: a duplicate came (our acknowledgement was lost
    /// or is late), or a transport was lost.
    again: Option<bool>,
}

impl RecvHalf {
    pub fn new(window: u32) -> RecvHalf {
        RecvHalf {
            window: window.into(),
            next: 0,
            ready: RecvBuf::default(),
            unreleased: 0,
            released: 0,
            ack_sent: 0,
            ooo: BTreeMap::new(),
            max_runs: max_runs(window),
            fin_at: None,
            fin_read: false,
            fin_acked: false,
            again: None,
        }
    }

    /// Bytes held: in order and unread, read and unreleased, out of order.
    pub fn held(&self) -> u64 {
        self.next - self.released + self.ooo.values().map(|r| r.len).sum::<u64>()
    }

    /// Out-of-order runs held.
    #[cfg(test)]
    pub fn runs(&self) -> usize {
        self.ooo.len()
    }

    /// The application read the fin.
    pub fn is_done(&self) -> bool {
        self.fin_read && self.fin_acked
    }

    /// Queue an acknowledgement now, on one transport or on all.
    pub fn ack_again(&mut self, everywhere: bool) {
        self.again = Some(self.again.unwrap_or(false) || everywhere);
    }

    /// A piece from any transport. An `Err` is the peer's violation: beyond the window, beyond
    /// or moving the fin, overflowing, or fragmented beyond [`crate::max_runs`].
    pub fn on_piece(&mut self, p: Piece) -> Result<(), String> {
        let Piece {
            offset,
            mut payload,
            fin,
        } = p;
        let end = offset
            .checked_add(payload.len() as u64)
            .ok_or_else(|| format!("data at offset {offset} overflows"))?;
        let limit = self.ack_sent + self.window;
        if end > limit {
            return Err(format!(
                "data up to offset {end} beyond the window (up to {limit})"
            ));
        }
        let fin_known = self.fin_at.is_some();
        match self.fin_at {
            Some(f) if end > f => return Err(format!("data up to {end} beyond the fin at {f}")),
            Some(f) if fin && end != f => {
                return Err(format!("a fin at {end} after one at {f}"));
            }
            None if fin => {
                let seen = self
                    .ooo
                    .last_key_value()
                    .map_or(self.next, |(s, r)| s + r.len);
                if end < seen.max(self.next) {
                    return Err(format!("a fin at {end} below data up to {seen}"));
                }
                self.fin_at = Some(end);
            }
            _ => {}
        }
        if end <= self.next {
            if !payload.is_empty() || (fin && fin_known) {
                // Sent again after a transport died, or our acknowledgement did not get there.
                self.ack_again(false);
            }
            return Ok(());
        }
        let start = offset.max(self.next);
        payload.advance((start - offset) as usize);
        self.insert(start, payload)?;
        self.pull();
        Ok(())
    }

    /// Puts bytes at `start` (at or above `next`) where no byte is yet, dropping the parts
    /// already held.
    fn insert(&mut self, mut start: u64, mut payload: Bytes) -> Result<(), String> {
        if start == self.next {
            self.next += payload.len() as u64;
            self.ready.push(payload);
            return Ok(());
        }
        if let Some((&s, r)) = self.ooo.range(..=start).next_back() {
            let held_to = s + r.len;
            if held_to > start {
                let skip = (held_to - start).min(payload.len() as u64);
                payload.advance(skip as usize);
                start += skip;
            }
        }
        while !payload.is_empty() {
            let end = start + payload.len() as u64;
            match self.ooo.range(start..end).next().map(|(&s, r)| (s, r.len)) {
                Some((s, len)) => {
                    let gap = payload.split_to((s - start) as usize);
                    self.put(start, gap)?;
                    let skip = len.min(payload.len() as u64);
                    payload.advance(skip as usize);
                    start = s + skip;
                }
                None => return self.put(start, payload),
            }
        }
        Ok(())
    }

    /// Adds bytes no run holds, appending to the run that ends where they start and taking in
    /// the one that starts where they end.
    fn put(&mut self, start: u64, bytes: Bytes) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        let len = bytes.len() as u64;
        let before = self
            .ooo
            .range(..start)
            .next_back()
            .filter(|(s, r)| *s + r.len == start)
            .map(|(s, _)| *s);
        let key = match before.and_then(|k| self.ooo.get_mut(&k).map(|r| (k, r))) {
            Some((k, r)) => {
                r.buf.push(bytes);
                r.len += len;
                k
            }
            None => {
                if self.ooo.len() >= self.max_runs {
                    return Err(format!(
                        "more than {} discontiguous runs of data out of order",
                        self.max_runs
                    ));
                }
                let mut buf = RecvBuf::default();
                buf.push(bytes);
                self.ooo.insert(start, Run { len, buf });
                start
            }
        };
        if let Some(mut after) = self.ooo.remove(&(start + len)) {
            if let Some(r) = self.ooo.get_mut(&key) {
                while let Some(b) = after.buf.pop(usize::MAX) {
                    r.buf.push(b);
                }
                r.len += after.len;
            }
        }
        Ok(())
    }

    /// Moves the runs that the in-order point reached into `ready`.
    fn pull(&mut self) {
        while let Some(entry) = self.ooo.first_entry() {
            let s = *entry.key();
            if s > self.next {
                return;
            }
            let mut run = entry.remove();
            let end = s + run.len;
            let mut skip = self.next.saturating_sub(s);
            while let Some(mut b) = run.buf.pop(usize::MAX) {
                let k = skip.min(b.len() as u64);
                b.advance(k as usize);
                skip -= k;
                self.ready.push(b);
            }
            self.next = self.next.max(end);
        }
    }

    /// The next in-order bytes, at most `max`; `Ok(None)` is the fin, `Blocked` nothing yet.
    pub fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        if let Some(b) = self.ready.pop(max) {
            self.unreleased += b.len() as u64;
            return Ok(Some(b));
        }
        if self.fin_at == Some(self.next) {
            self.fin_read = true;
            return Ok(None);
        }
        Err(StreamError::Blocked)
    }

    /// Whether [`RecvHalf::read`] has something (bytes or the fin).
    pub fn is_readable(&self) -> bool {
        self.ready.len() > 0 || (self.fin_at == Some(self.next) && !self.fin_read)
    }

    /// The application is done with `n` bytes it read.
    pub fn release(&mut self, n: usize) {
        let n = (n as u64).min(self.unreleased);
        self.unreleased -= n;
        self.released += n;
    }

    /// Whether [`RecvHalf::poll_ack`] has one to give.
    pub fn ack_due(&self) -> bool {
        let owed = self.released - self.ack_sent;
        (self.fin_at == Some(self.released) && !self.fin_acked)
            || (owed > 0 && owed >= (self.window / 4).max(1))
            || self.again.is_some()
    }

    /// The acknowledgement to send now, if one is worth it: a quarter of the window released
    /// since the last, the fin once every byte before it was released, or one asked for again.
    pub fn poll_ack(&mut self) -> Option<AckOut> {
        let fin = self.fin_at == Some(self.released);
        if fin && !self.fin_acked {
            self.fin_acked = true;
            self.again = None;
            self.ack_sent = self.released;
            return Some(AckOut {
                offset: self.released,
                fin: true,
                everywhere: true,
            });
        }
        let owed = self.released - self.ack_sent;
        if owed > 0 && owed >= (self.window / 4).max(1) {
            self.ack_sent = self.released;
            return Some(AckOut {
                offset: self.released,
                fin: false,
                everywhere: self.again.take().unwrap_or(false),
            });
        }
        let everywhere = self.again.take()?;
        self.ack_sent = self.released;
        Some(AckOut {
            offset: self.released,
            fin: self.fin_acked,
            everywhere,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(offset: u64, bytes: &[u8], fin: bool) -> Piece {
        Piece {
            offset,
            payload: Bytes::copy_from_slice(bytes),
            fin,
        }
    }

    fn read_all(r: &mut RecvHalf) -> (Vec<u8>, bool) {
        let mut v = Vec::new();
        loop {
            match r.read(usize::MAX) {
                Ok(Some(b)) => {
                    r.release(b.len());
                    v.extend_from_slice(&b);
                }
                Ok(None) => return (v, true),
                Err(_) => return (v, false),
            }
        }
    }

    #[test]
    fn overlapping_and_out_of_order_pieces_come_out_once_in_order() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut r = RecvHalf::new(1 << 16);
        r.on_piece(piece(60, &data[60..80], false)).unwrap();
        r.on_piece(piece(20, &data[20..30], false)).unwrap();
        r.on_piece(piece(25, &data[25..65], false)).unwrap();
        assert_eq!(r.runs(), 1, "20..80 is one run");
        r.on_piece(piece(90, &data[90..100], true)).unwrap();
        assert_eq!(read_all(&mut r), (vec![], false));
        r.on_piece(piece(0, &data[0..25], false)).unwrap();
        r.on_piece(piece(10, &data[10..95], false)).unwrap();
        assert_eq!(r.runs(), 0);
        assert_eq!(read_all(&mut r), (data.clone(), true));
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn the_window_and_the_fin_are_enforced() {
        let mut r = RecvHalf::new(100);
        assert!(r.on_piece(piece(0, &[0; 101], false)).is_err());
        r.on_piece(piece(0, &[0; 100], false)).unwrap();
        assert!(
            r.on_piece(piece(100, &[0], false)).is_err(),
            "nothing acked yet"
        );
        read_all(&mut r);
        assert_eq!(r.poll_ack().map(|a| a.offset), Some(100));
        r.on_piece(piece(150, &[0; 50], true)).unwrap();
        assert!(
            r.on_piece(piece(150, &[0; 51], false)).is_err(),
            "past the fin"
        );
        assert!(r.on_piece(piece(120, &[], true)).is_err(), "a second fin");
        let mut r = RecvHalf::new(100);
        r.on_piece(piece(50, &[0; 10], false)).unwrap();
        assert!(
            r.on_piece(piece(40, &[], true)).is_err(),
            "a fin below data"
        );
    }

    #[test]
    fn acks_come_per_quarter_window_then_the_fin_everywhere_and_again_on_duplicates() {
        let mut r = RecvHalf::new(400);
        r.on_piece(piece(0, &[1; 99], false)).unwrap();
        read_all(&mut r);
        assert_eq!(r.poll_ack(), None);
        r.on_piece(piece(99, &[1; 1], true)).unwrap();
        let (_, fin) = read_all(&mut r);
        assert!(fin);
        let ack = r.poll_ack().unwrap();
        assert_eq!((ack.offset, ack.fin, ack.everywhere), (100, true, true));
        assert_eq!(r.poll_ack(), None);
        assert!(r.is_done());
        r.on_piece(piece(50, &[1; 50], true)).unwrap();
        let ack = r.poll_ack().unwrap();
        assert_eq!((ack.offset, ack.fin, ack.everywhere), (100, true, false));
    }

    #[test]
    fn fragmenting_on_purpose_is_refused() {
        let mut r = RecvHalf::new(256 * 1024);
        let max = r.max_runs;
        for i in 0..max as u64 {
            r.on_piece(piece(2 + 2 * i, &[0], false)).unwrap();
        }
        assert!(r.on_piece(piece(2 + 2 * max as u64, &[0], false)).is_err());
        // Filling gaps merges runs instead.
        r.on_piece(piece(3, &[0], false)).unwrap();
        assert_eq!(r.runs(), max - 1);
    }
}
