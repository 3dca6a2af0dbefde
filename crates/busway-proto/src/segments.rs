//! Encoded envelopes waiting for the socket, as a list of buffers for one vectored write.
//!
//! A Data payload of [`ZERO_COPY_MIN`] bytes or more is not copied into an output buffer: its
//! envelope is written as three pieces — the header up to the payload, the payload `Bytes`
//! itself (the very buffer the session read its socket into), and the trailer with the check —
//! and the check is computed over the pieces in one streaming pass. Small frames are encoded
//! contiguously into one shared buffer, so a batch of control frames is one piece. A haproxy
//! hop touches a byte only in the kernel; this keeps busway's user-space passes over a bulk
//! payload to the check alone.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};

use crate::codec::encode;
use crate::frame::{Body, Data, Frame};
use crate::mac::{FrameMac, MAC_LEN};
use crate::wire::{encode_keyed, Rekey, KEYED_VERSION};
use crate::VERSION;

/// Payloads at least this large are sent from their own buffer instead of being copied.
pub const ZERO_COPY_MIN: usize = 2048;

/// Capacity of a fresh buffer for small frames.
const SMALL_CAPACITY: usize = 16 * 1024;

/// Bytes queued for the socket, in order.
#[derive(Debug, Default)]
pub struct Segments {
    /// Sealed pieces, oldest first.
    queue: VecDeque<Bytes>,
    /// Bytes after the last sealed piece: small frames, headers and trailers.
    small: BytesMut,
    len: usize,
    /// The keyed check of this direction, once the handshake gave one.
    key: Option<FrameMac>,
}

impl Segments {
    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one frame's envelope: keyed once [`Segments::rekey`] gave a key, except
    /// handshake frames, which are always plain.
    pub fn push(&mut self, frame: &Frame) {
        let keyed = self.key.is_some() && !frame.is_handshake();
        match &frame.body {
            // Data is never a handshake frame: keyed exactly when there is a key.
            Some(Body::Data(d)) if d.payload.len() >= ZERO_COPY_MIN => self.push_data(d),
            _ => {
                let before = self.small.len();
                self.reserve_small();
                match &mut self.key {
                    Some(mac) if keyed => encode_keyed(frame, mac, &mut self.small),
                    _ => encode(frame, &mut self.small),
                }
                self.len += self.small.len() - before;
            }
        }
    }

    /// Encodes every later frame with the key the connection gave
    /// ([`crate::Connection::poll_transmit`]).
    pub fn rekey(&mut self, rekey: Rekey) {
        self.key = Some(rekey.0);
    }

    /// Whether envelopes are written with a MAC now.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    fn reserve_small(&mut self) {
        if self.small.capacity() - self.small.len() < 256 {
            self.small.reserve(SMALL_CAPACITY);
        }
    }

    /// A Data envelope in three pieces around its payload, byte for byte what [`encode`] (or,
    /// keyed, `wire::encode_keyed`) writes.
    fn push_data(&mut self, d: &Data) {
        self.reserve_small();
        let start = self.small.len();
        let version = if self.key.is_some() {
            KEYED_VERSION
        } else {
            VERSION
        };
        write_data_head(d, version, &mut self.small);
        let tail = data_tail(d);
        let head = self.small.len() - start;
        let check_len = match &mut self.key {
            Some(mac) => {
                // No tag only past ring's 64 GiB limit; zeros then fail at the peer.
                let tag = mac
                    .split(&self.small[start..], &d.payload, tail)
                    .unwrap_or([0; MAC_LEN]);
                self.seal();
                self.queue.push_back(d.payload.clone());
                self.small.put_slice(tail);
                self.small.put_slice(&tag);
                MAC_LEN
            }
            None => {
                let mut hash = crc32fast::Hasher::new();
                hash.update(&self.small[start..]);
                hash.update(&d.payload);
                hash.update(tail);
                self.seal();
                self.queue.push_back(d.payload.clone());
                self.small.put_slice(tail);
                self.small.put_u32_le(hash.finalize());
                crate::CHECK_LEN
            }
        };
        self.len += head + d.payload.len() + tail.len() + check_len;
    }

    /// Moves the small bytes written so far into the queue, so a payload can follow them.
    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.queue.push_back(self.small.split().freeze());
        }
    }

    /// Fills `dst` with the pieces to write, oldest first; returns how many it filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for piece in self
            .queue
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.small[..]))
        {
            if n == dst.len() {
                break;
            }
            if !piece.is_empty() {
                dst[n] = IoSlice::new(piece);
                n += 1;
            }
        }
        n
    }

    /// Forgets the first `n` bytes, which the socket took.
    pub fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            match self.queue.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.queue.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    return;
                }
                None => {
                    let k = n.min(self.small.len());
                    self.small.advance(k);
                    return;
                }
            }
        }
    }

    /// Everything queued, as one buffer (tests and the last words of a failing transport).
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.len);
        for b in &self.queue {
            out.put_slice(b);
        }
        out.put_slice(&self.small);
        out
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.small.clear();
        self.len = 0;
    }
}

/// Writes a Data envelope up to its payload: the two varints, the frame's field 5 and the Data
/// fields before the payload, in prost's order, with `version` first. A non-empty payload
/// follows, then [`data_tail`], then the check.
pub(crate) fn write_data_head(d: &Data, version: u64, out: &mut BytesMut) {
    let body = data_body_len(d);
    let frame_len = 1 + encoded_len_varint(body as u64) + body;
    encode_varint(version, out);
    encode_varint(frame_len as u64, out);
    // Frame field 5 (data), length-delimited, then the Data fields in tag order.
    out.put_u8(5 << 3 | 2);
    encode_varint(body as u64, out);
    if d.stream != 0 {
        out.put_u8(1 << 3);
        encode_varint(d.stream, out);
    }
    if d.offset != 0 {
        out.put_u8(2 << 3);
        encode_varint(d.offset, out);
    }
    if !d.payload.is_empty() {
        out.put_u8(3 << 3 | 2);
        encode_varint(d.payload.len() as u64, out);
    }
}

/// What follows a Data payload before the check: the fin field, if set.
pub(crate) fn data_tail(d: &Data) -> &'static [u8] {
    if d.fin {
        &[4 << 3, 1]
    } else {
        &[]
    }
}

/// Length of the protobuf encoding of `d`, as prost computes it.
fn data_body_len(d: &Data) -> usize {
    let mut n = 0;
    if d.stream != 0 {
        n += 1 + encoded_len_varint(d.stream);
    }
    if d.offset != 0 {
        n += 1 + encoded_len_varint(d.offset);
    }
    if !d.payload.is_empty() {
        n += 1 + encoded_len_varint(d.payload.len() as u64) + d.payload.len();
    }
    if d.fin {
        n += 2;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;
    use crate::frame::Ping;

    fn data(stream: u64, offset: u64, len: usize, fin: bool) -> Frame {
        Frame::new(Body::Data(Data {
            stream,
            offset,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
            fin,
        }))
    }

    #[test]
    fn pieces_are_exactly_the_contiguous_encoding() {
        for (stream, offset, len, fin) in [
            (1, 0, ZERO_COPY_MIN, false),
            (3, 7, 65_536, true),
            (0, 0, 5000, true),
            (u64::MAX, u64::MAX, ZERO_COPY_MIN + 1, false),
            (5, 1 << 40, 10, true),
        ] {
            let f = data(stream, offset, len, fin);
            let mut want = BytesMut::new();
            encode(&f, &mut want);
            let mut s = Segments::default();
            s.push(&Frame::new(Body::Ping(Ping { timepoint_us: 9 })));
            s.push(&f);
            s.push(&Frame::new(Body::Ping(Ping { timepoint_us: 10 })));
            let mut all = s.to_bytes();
            assert_eq!(s.len(), all.len());
            decode(&mut all).unwrap().unwrap();
            assert_eq!(&all[..want.len()], &want[..], "stream {stream} len {len}");
            all.advance(want.len());
            assert!(decode(&mut all).unwrap().is_some());
            assert!(all.is_empty());
        }
    }

    #[test]
    fn a_large_payload_is_not_copied() {
        let f = data(1, 0, 10_000, false);
        let Some(Body::Data(d)) = &f.body else {
            unreachable!()
        };
        let mut s = Segments::default();
        s.push(&f);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = s.io_slices(&mut slices);
        assert_eq!(n, 3, "head, payload, trailer");
        assert_eq!(slices[1].as_ptr(), d.payload.as_ptr());
    }

    #[test]
    fn advance_walks_across_pieces() {
        let mut s = Segments::default();
        s.push(&data(1, 0, 4096, false));
        s.push(&data(1, 4096, 4096, true));
        let whole = s.to_bytes();
        let mut taken = Vec::new();
        while !s.is_empty() {
            let mut slices = [IoSlice::new(&[]); 2];
            let n = s.io_slices(&mut slices);
            // Take 1000 bytes at most per "write", across piece edges.
            let mut budget = 1000;
            let mut wrote = 0;
            for sl in &slices[..n] {
                let k = sl.len().min(budget);
                taken.extend_from_slice(&sl[..k]);
                budget -= k;
                wrote += k;
            }
            s.advance(wrote);
        }
        assert_eq!(taken, &whole[..]);
    }
}
