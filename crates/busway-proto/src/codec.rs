//! The plain envelope: `varint version | varint length | protobuf Frame | 4-byte check`.
//! Keyed envelopes (a 16-byte MAC instead of the CRC, once a secret was proved without TLS)
//! are in `wire.rs`.
//!
//! The version comes first so an incompatible peer is recognised from its first byte, and the
//! length is checked against [`MAX_FRAME_LEN`] as soon as it is readable so a hostile length
//! never makes us buffer or allocate. The check (CRC-32, little endian, over every byte before
//! it) catches corruption that TCP's checksum lets through and garbage from something that is
//! not a busway node.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::frame::Frame;
use crate::{MAX_FRAME_LEN, VERSION};

/// Bytes of the trailing check.
pub const CHECK_LEN: usize = 4;

/// Longest varint accepted: ten bytes hold any `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Why bytes from the peer are not the bus protocol. Every one is fatal to the transport.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("unsupported envelope version {0}")]
    Version(u64),
    #[error("frame length {0} exceeds the limit")]
    Oversize(u64),
    #[error("envelope checksum mismatch")]
    Checksum,
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A keyed envelope whose MAC does not verify (altered, injected, replayed, reordered or
    /// dropped on the path), or a plain one where a keyed one was due.
    #[error("envelope MAC does not verify")]
    Auth,
}

impl DecodeError {
    /// A fixed label per variant, usable as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Version(_) => "version",
            DecodeError::Oversize(_) => "oversize",
            DecodeError::Checksum => "checksum",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Auth => "auth",
        }
    }
}

/// Appends one envelope holding `frame` to `out`.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    let len = frame.encoded_len();
    let start = out.len();
    out.reserve(2 * MAX_VARINT_LEN + len + CHECK_LEN);
    prost::encoding::encode_varint(VERSION, out);
    prost::encoding::encode_varint(len as u64, out);
    frame.encode_raw(out);
    let check = check(&out[start..]);
    out.put_u32_le(check);
}

/// The envelope check over `bytes`: CRC-32 (IEEE 802.3, as zlib computes it).
///
/// It is the one pass busway makes over every payload byte, twice per hop (sender and
/// receiver), so its speed is a bulk transfer's CPU cost: crc32fast folds with PCLMULQDQ, and
/// VPCLMULQDQ on CPUs that have it, chosen at run time — about 50 GiB/s against 25 for XXH3 with
/// AVX2 on the machine busway was measured on. Like the 32-bit XXH3 it replaced, it catches
/// corruption and garbage, not tampering (docs/PROTOCOL.md).
pub fn check(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Size of the envelope [`encode`] would write for `frame`.
pub fn encoded_len(frame: &Frame) -> usize {
    let len = frame.encoded_len();
    prost::encoding::encoded_len_varint(VERSION)
        + prost::encoding::encoded_len_varint(len as u64)
        + len
        + CHECK_LEN
}

/// Consumes one complete envelope from the front of `buf`.
///
/// `Ok(None)` means more bytes are needed and `buf` is untouched. Payloads of the returned frame
/// are slices of `buf`'s memory, not copies. After an error the connection is not speaking the
/// protocol and `buf` should be dropped.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
    let Some(head) = read_head(buf, VERSION)? else {
        return Ok(None);
    };
    let EnvelopeHead { header, len, .. } = head;
    let checked = header + len;
    let total = checked + CHECK_LEN;
    if buf.len() < total {
        // Room for the rest is the caller's business: reserving here would copy the partial
        // envelope whenever earlier payloads still share the buffer.
        return Ok(None);
    }
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&buf[checked..total]);
    if self::check(&buf[..checked]) != u32::from_le_bytes(check) {
        return Err(DecodeError::Checksum);
    }
    let mut envelope = buf.split_to(total);
    envelope.advance(header);
    envelope.truncate(len);
    let body: Bytes = envelope.freeze();
    Frame::decode(body)
        .map(Some)
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// The version and length at the front of an envelope.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnvelopeHead {
    /// Bytes of the two varints.
    pub header: usize,
    /// Bytes of the frame, at most [`MAX_FRAME_LEN`].
    pub len: usize,
}

/// Reads the two varints of an envelope: `Ok(None)` while incomplete. A version other than
/// `expect` fails at once, and so does a length over [`MAX_FRAME_LEN`], before any of the
/// body is waited for.
pub(crate) fn read_head(buf: &[u8], expect: u64) -> Result<Option<EnvelopeHead>, DecodeError> {
    let (version, n1) = match read_varint(buf)? {
        Some(v) => v,
        None => return Ok(None),
    };
    if version != expect {
        return Err(DecodeError::Version(version));
    }
    let (len, n2) = match read_varint(&buf[n1..])? {
        Some(v) => v,
        None => return Ok(None),
    };
    if len > MAX_FRAME_LEN as u64 {
        return Err(DecodeError::Oversize(len));
    }
    Ok(Some(EnvelopeHead {
        header: n1 + n2,
        // Capped above, far below usize::MAX.
        len: len as usize,
    }))
}

/// The first varint of `buf`, if complete: which kind of envelope comes next.
pub(crate) fn peek_version(buf: &[u8]) -> Result<Option<u64>, DecodeError> {
    Ok(read_varint(buf)?.map(|(v, _)| v))
}

/// Reads a protobuf varint from the front of `bytes`: `Ok(None)` if it is incomplete.
fn read_varint(bytes: &[u8]) -> Result<Option<(u64, usize)>, DecodeError> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(DecodeError::Malformed("varint overflows 64 bits".into()));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        return Err(DecodeError::Malformed("varint longer than 10 bytes".into()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Body, Data, Ping};

    fn data(len: usize) -> Frame {
        Frame::new(Body::Data(Data {
            stream: 3,
            offset: 7,
            payload: Bytes::from(vec![0xab; len]),
            fin: true,
        }))
    }

    #[test]
    fn round_trip_and_exact_consumption() {
        let mut buf = BytesMut::new();
        encode(&data(100), &mut buf);
        let first_len = buf.len();
        assert_eq!(first_len, encoded_len(&data(100)));
        encode(&Frame::new(Body::Ping(Ping { timepoint_us: 9 })), &mut buf);
        assert_eq!(decode(&mut buf).unwrap(), Some(data(100)));
        assert_eq!(
            decode(&mut buf).unwrap(),
            Some(Frame::new(Body::Ping(Ping { timepoint_us: 9 })))
        );
        assert!(buf.is_empty());
        assert_eq!(decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn incomplete_leaves_buffer_untouched() {
        let mut full = BytesMut::new();
        encode(&data(1000), &mut full);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode(&mut part).unwrap(), None, "cut at {cut}");
            assert_eq!(&part[..], &full[..cut]);
        }
    }

    #[test]
    fn payload_is_a_slice_of_the_input() {
        let mut buf = BytesMut::new();
        encode(&data(4096), &mut buf);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Some(Frame {
            body: Some(Body::Data(d)),
        }) = decode(&mut buf).unwrap()
        else {
            panic!("not a data frame");
        };
        assert!(range.contains(&(d.payload.as_ptr() as usize)));
    }

    #[test]
    fn wrong_version_is_seen_from_the_first_byte() {
        let mut buf = BytesMut::from(&[1u8][..]);
        assert_eq!(decode(&mut buf), Err(DecodeError::Version(1)));
        assert_eq!(DecodeError::Version(1).reason(), "version");
    }

    #[test]
    fn oversize_is_seen_before_the_body_arrives() {
        let mut buf = BytesMut::new();
        prost::encoding::encode_varint(VERSION, &mut buf);
        prost::encoding::encode_varint(MAX_FRAME_LEN as u64 + 1, &mut buf);
        assert_eq!(
            decode(&mut buf),
            Err(DecodeError::Oversize(MAX_FRAME_LEN as u64 + 1))
        );
        let mut huge = BytesMut::from(&[3u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(decode(&mut huge), Err(DecodeError::Oversize(_))));
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let mut buf = BytesMut::from(&[0x81u8; 11][..]);
        assert!(matches!(decode(&mut buf), Err(DecodeError::Malformed(_))));
        // Ten bytes whose last one carries more than the 64th bit.
        let mut bytes = vec![3u8];
        bytes.extend([0x80; 9]);
        bytes.push(0x02);
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(decode(&mut buf), Err(DecodeError::Malformed(_))));
        // Nine continuation bytes: still possibly valid, so incomplete.
        let mut buf = BytesMut::from(&[3u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80][..]);
        assert_eq!(decode(&mut buf), Ok(None));
    }

    #[test]
    fn corrupted_check_and_body_are_rejected() {
        let mut buf = BytesMut::new();
        encode(&data(10), &mut buf);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(decode(&mut buf.clone()), Err(DecodeError::Checksum));
        buf[last] ^= 1;
        buf[5] ^= 0x10;
        assert_eq!(decode(&mut buf), Err(DecodeError::Checksum));
    }

    #[test]
    fn valid_check_over_invalid_protobuf_is_malformed() {
        let body = [0xffu8, 0xff, 0xff];
        let mut buf = BytesMut::new();
        prost::encoding::encode_varint(VERSION, &mut buf);
        prost::encoding::encode_varint(body.len() as u64, &mut buf);
        buf.extend_from_slice(&body);
        let check = check(&buf);
        buf.put_u32_le(check);
        let err = decode(&mut buf).unwrap_err();
        assert_eq!(err.reason(), "malformed");
    }

    #[test]
    fn unknown_frame_type_decodes_to_empty_body() {
        // Field 15, varint 5: a frame type from a future version.
        let body = [15u8 << 3, 5];
        let mut buf = BytesMut::new();
        prost::encoding::encode_varint(VERSION, &mut buf);
        prost::encoding::encode_varint(body.len() as u64, &mut buf);
        buf.extend_from_slice(&body);
        let check = check(&buf);
        buf.put_u32_le(check);
        assert_eq!(decode(&mut buf).unwrap(), Some(Frame { body: None }));
    }

    /// Byte-exact vectors, also quoted in docs/PROTOCOL.md for other implementations. The checks
    /// were computed independently, with zlib's `crc32`.
    #[test]
    fn golden_envelopes() {
        let mut buf = BytesMut::new();
        encode(&Frame::new(Body::Ping(Ping { timepoint_us: 1 })), &mut buf);
        assert_eq!(
            &buf[..],
            [0x03, 0x04, 0x42, 0x02, 0x08, 0x01, 0x8b, 0x8b, 0x91, 0x4f]
        );
        let mut buf = BytesMut::new();
        let hi = Data {
            stream: 1,
            offset: 0,
            payload: Bytes::from_static(b"hi"),
            fin: true,
        };
        encode(&Frame::new(Body::Data(hi)), &mut buf);
        assert_eq!(
            &buf[..],
            [
                0x03, 0x0a, 0x2a, 0x08, 0x08, 0x01, 0x1a, 0x02, 0x68, 0x69, 0x20, 0x01, 0xf1, 0x24,
                0x4b, 0xfb
            ]
        );
    }
}
