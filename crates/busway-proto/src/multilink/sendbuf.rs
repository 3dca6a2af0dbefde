//! The bytes a multi-link sender keeps until they are acknowledged: written by the
//! application, maybe sent, maybe lost with a transport and sent again, by offset.
//!
//! It is read at any offset it holds (a retransmission starts anywhere), so it keeps each
//! chunk with its offset. Its size is bounded by the peer's window, but its bookkeeping must be
//! too: an application writing one byte at a time must not cost a chunk per byte, so small
//! writes are copied together into a tail buffer, as the receive side does
//! ([`crate::COPY_BELOW`]); large ones are kept as written, and sent without a copy.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::recv::COPY_BELOW;

/// A tail this full is closed into a chunk, so it does not grow without end.
const TAIL_MAX: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct SendBuf {
    /// Offset of the first byte held.
    start: u64,
    /// Closed chunks with their offsets, oldest first, contiguous.
    chunks: VecDeque<(u64, Bytes)>,
    /// Small writes after the last chunk, at `tail_start`.
    tail: BytesMut,
    tail_start: u64,
    /// Offset just past the last byte written.
    end: u64,
}

impl SendBuf {
    /// Offset just past the last byte written.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        let len = b.len();
        if len >= COPY_BELOW {
            self.close_tail();
            self.chunks.push_back((self.end, b));
        } else {
            if self.tail.len() + len > TAIL_MAX {
                self.close_tail();
            }
            if self.tail.is_empty() {
                self.tail_start = self.end;
            }
            self.tail.extend_from_slice(&b);
        }
        self.end += len as u64;
    }

    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            let t = std::mem::take(&mut self.tail).freeze();
            self.chunks.push_back((self.tail_start, t));
        }
    }

    /// Up to `max` bytes from `offset`, from one chunk (so possibly fewer): a slice of a large
    /// write, a copy from the tail. Empty when `offset` is not held.
    pub fn slice(&self, offset: u64, max: usize) -> Bytes {
        if offset < self.start || offset >= self.end || max == 0 {
            return Bytes::new();
        }
        if !self.tail.is_empty() && offset >= self.tail_start {
            let from = (offset - self.tail_start) as usize;
            let n = (self.tail.len() - from).min(max);
            return Bytes::copy_from_slice(&self.tail[from..from + n]);
        }
        // The last chunk starting at or before `offset` holds it: chunks are contiguous.
        let i = self.chunks.partition_point(|(s, _)| *s <= offset);
        let Some((s, chunk)) = i.checked_sub(1).and_then(|i| self.chunks.get(i)) else {
            return Bytes::new();
        };
        let from = (offset - s) as usize;
        let n = chunk.len().saturating_sub(from).min(max);
        chunk.slice(from..from + n)
    }

    /// Forgets every byte below `to` (acknowledged).
    pub fn trim(&mut self, to: u64) {
        let to = to.min(self.end);
        if to <= self.start {
            return;
        }
        self.start = to;
        while let Some((s, c)) = self.chunks.front_mut() {
            let end = *s + c.len() as u64;
            if end <= to {
                self.chunks.pop_front();
                continue;
            }
            if *s < to {
                c.advance((to - *s) as usize);
                *s = to;
            }
            break;
        }
        if !self.tail.is_empty() && to > self.tail_start {
            let n = ((to - self.tail_start) as usize).min(self.tail.len());
            self.tail.advance(n);
            self.tail_start = to;
        }
    }

    #[cfg(test)]
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + usize::from(!self.tail.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(from: u64, n: usize) -> Vec<u8> {
        (from..from + n as u64).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn any_offset_reads_back_what_was_written() {
        let mut b = SendBuf::default();
        let mut at = 0u64;
        for n in [1usize, 40_000, 3, 70_000, 2, 2, COPY_BELOW] {
            b.push(Bytes::from(pat(at, n)));
            at += n as u64;
        }
        assert_eq!(b.end(), at);
        for offset in (0..at).step_by(997) {
            let s = b.slice(offset, 5000);
            assert!(!s.is_empty() && s.len() <= 5000);
            assert_eq!(&s[..], &pat(offset, s.len())[..], "at {offset}");
        }
        assert!(b.slice(at, 10).is_empty());
        b.trim(50_000);
        assert!(b.slice(49_999, 10).is_empty());
        assert_eq!(&b.slice(50_000, 10)[..], &pat(50_000, 10)[..]);
        assert_eq!(b.len(), at - 50_000);
        b.trim(at);
        assert_eq!(b.len(), 0);
        assert_eq!(b.chunk_count(), 0);
    }

    #[test]
    fn one_byte_writes_cost_bytes_not_chunks() {
        let mut b = SendBuf::default();
        for i in 0..200_000u64 {
            b.push(Bytes::from(vec![(i % 251) as u8]));
        }
        assert!(b.chunk_count() <= 4, "{}", b.chunk_count());
        assert_eq!(&b.slice(150_000, 3)[..], &pat(150_000, 3)[..]);
        b.trim(100_001);
        assert_eq!(&b.slice(100_001, 2)[..], &pat(100_001, 2)[..]);
    }

    #[test]
    fn a_large_write_is_sent_without_a_copy() {
        let mut b = SendBuf::default();
        let w = Bytes::from(vec![3u8; COPY_BELOW * 2]);
        let ptr = w.as_ptr();
        b.push(w);
        assert_eq!(b.slice(0, usize::MAX).as_ptr(), ptr);
    }
}
