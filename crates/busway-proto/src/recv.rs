//! What the peer sent on one stream and the application has not read yet.
//!
//! Credit counts payload bytes, so what a stream holds must cost about what it counts: a peer
//! sending one byte per frame must not make us keep one allocation (and ~70 bytes of
//! bookkeeping) per byte. Payloads below [`COPY_BELOW`] are therefore copied into one growing
//! tail buffer; larger ones are kept as the slice of the read buffer they arrived in, which
//! saves a copy on bulk transfers and pins at most a few times their size.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Payloads smaller than this are copied together; larger ones are kept as they arrived.
pub const COPY_BELOW: usize = 32 * 1024;

/// A tail buffer this full is closed and a new one started, so no single buffer grows forever.
const TAIL_MAX: usize = 64 * 1024;

/// Boxed, and only while it holds bytes: every idle stream of a node keeps one of these, and an
/// empty one costs a pointer instead of its queues.
#[derive(Debug, Default)]
pub(crate) struct RecvBuf(Option<Box<Queue>>);

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// Small payloads after the last chunk, copied together.
    tail: BytesMut,
    len: usize,
}

impl RecvBuf {
    /// Unread bytes.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len)
    }

    pub fn push(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        self.0.get_or_insert_default().push(payload);
    }

    /// Up to `max` bytes from the front; `None` when empty.
    pub fn pop(&mut self, max: usize) -> Option<Bytes> {
        let q = self.0.as_mut()?;
        let out = q.pop(max);
        if q.len == 0 {
            self.0 = None;
        }
        out
    }

    /// Forgets everything; returns how many bytes were dropped.
    pub fn clear(&mut self) -> usize {
        self.0.take().map_or(0, |q| q.len)
    }
}

impl Queue {
    fn push(&mut self, payload: Bytes) {
        self.len += payload.len();
        if payload.len() >= COPY_BELOW {
            self.close_tail();
            self.chunks.push_back(payload);
            return;
        }
        if self.tail.len() + payload.len() > TAIL_MAX {
            self.close_tail();
        }
        if self.tail.is_empty() {
            // Exactly sized: the common case is one message read at once, and an idle stream
            // must keep no spare capacity around.
            self.tail = BytesMut::from(&payload[..]);
        } else {
            // Amortised doubling while a slow reader lets small payloads pile up.
            let want = self.tail.len().max(payload.len());
            self.tail.reserve(want);
            self.tail.extend_from_slice(&payload);
        }
    }

    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            let t = std::mem::take(&mut self.tail);
            self.chunks.push_back(t.freeze());
        }
    }

    fn pop(&mut self, max: usize) -> Option<Bytes> {
        let max = max.max(1);
        let out = match self.chunks.front_mut() {
            Some(front) if front.len() <= max => self.chunks.pop_front(),
            Some(front) => Some(front.split_to(max)),
            None if self.tail.is_empty() => None,
            None if self.tail.len() <= max => Some(std::mem::take(&mut self.tail).freeze()),
            None => Some(self.tail.split_to(max).freeze()),
        }?;
        self.len -= out.len();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_whatever_the_sizes() {
        let mut r = RecvBuf::default();
        let mut want = Vec::new();
        let mut next = 0u8;
        for size in [1, 5, 40_000, 3, COPY_BELOW, 2, 70_000, 1] {
            let p: Vec<u8> = (0..size)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            want.extend_from_slice(&p);
            r.push(Bytes::from(p));
        }
        assert_eq!(r.len(), want.len());
        let mut got = Vec::new();
        while let Some(b) = r.pop(9_999) {
            assert!(b.len() <= 9_999);
            got.extend_from_slice(&b);
        }
        assert_eq!(got, want);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn one_byte_frames_cost_bytes_not_chunks() {
        let mut r = RecvBuf::default();
        for i in 0..100_000u32 {
            r.push(Bytes::copy_from_slice(&[i as u8]));
        }
        // 100,000 bytes in tail buffers of up to 64 KiB: two chunks, not 100,000.
        let chunks = r.0.as_ref().map_or(0, |q| q.chunks.len());
        assert!(chunks <= 2, "{chunks} chunks");
        assert_eq!(r.len(), 100_000);
    }

    #[test]
    fn a_large_payload_is_kept_without_copying() {
        let mut r = RecvBuf::default();
        let p = Bytes::from(vec![7u8; COPY_BELOW]);
        let ptr = p.as_ptr();
        r.push(p);
        assert_eq!(r.pop(usize::MAX).unwrap().as_ptr(), ptr);
        assert!(r.pop(1).is_none());
        assert!(r.0.is_none(), "an empty buffer holds nothing");
    }
}
