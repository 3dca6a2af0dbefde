//! Envelopes as a transport's driver reads and writes them: plain (CRC-32) until the
//! handshake says otherwise, then keyed (a 16-byte MAC, `mac.rs`) in each direction that has a
//! key.
//!
//! The driver owns the socket, so it owns the checks too and runs them outside the
//! connection's lock: a [`Decoder`] for what it reads, a [`crate::Segments`] for what it
//! writes. The [`crate::Connection`] decides when a check changes, and says so at the one point
//! where the driver can apply it without ambiguity:
//! - reading: after every handshake frame the [`Decoder`] holds (decodes nothing more) until
//!   the driver has handed that frame to the connection and called
//!   [`crate::Connection::update_decoder`], because the envelopes behind it may need the key
//!   the frame just established;
//! - writing: [`crate::Connection::poll_transmit`] returns a [`Rekey`] that applies to the
//!   frames it returned with it (and every later one). Handshake frames are always plain.
//!
//! Keyed envelope: `varint 4 | varint length | protobuf Frame | 16-byte MAC`.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::codec::{self, peek_version, read_head, DecodeError};
use crate::frame::{Body, Frame};
use crate::mac::{tags_equal, FrameMac, MAC_LEN};
use crate::segments::{data_tail, write_data_head};
use crate::VERSION;

/// First varint of a keyed envelope; plain ones carry [`crate::VERSION`].
pub const KEYED_VERSION: u64 = 4;

/// A new key for the envelopes a driver writes, from [`crate::Connection::poll_transmit`]:
/// give it to [`crate::Segments::rekey`] before encoding the frames returned with it.
#[must_use = "frames returned with a Rekey must be encoded with it"]
#[derive(Debug)]
pub struct Rekey(pub(crate) FrameMac);

impl Rekey {
    /// A key made by hand, for benchmarks of the keyed check.
    #[doc(hidden)]
    pub fn with_mac(mac: FrameMac) -> Rekey {
        Rekey(mac)
    }
}

/// What the decoder expects next.
#[derive(Debug, Default)]
pub(crate) enum RecvCheck {
    /// Plain envelopes only.
    #[default]
    Plain,
    /// Keyed envelopes only, verified with this direction's key.
    Keyed(Box<FrameMac>),
    /// The acceptor refused a resumption ticket: the 0-RTT envelopes that follow the Hello
    /// were sealed with a key it does not have, so keyed envelopes are skipped unread until the
    /// initiator's plain Auth (under TLS they are plain, and every frame but a handshake frame
    /// or a GoAway is skipped). None of them reaches the connection.
    SkipEarly,
}

/// Decodes the envelopes a driver reads, with the check the handshake established.
#[derive(Debug, Default)]
pub struct Decoder {
    check: RecvCheck,
    held: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder keyed by hand, for benchmarks of the keyed check.
    #[doc(hidden)]
    pub fn with_mac(mac: FrameMac) -> Decoder {
        Decoder {
            check: RecvCheck::Keyed(Box::new(mac)),
            held: false,
        }
    }

    /// Whether it holds after a handshake frame, waiting for
    /// [`crate::Connection::update_decoder`].
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Whether envelopes are verified with a key now.
    pub fn is_keyed(&self) -> bool {
        matches!(self.check, RecvCheck::Keyed(_))
    }

    pub(crate) fn set(&mut self, check: Option<RecvCheck>) {
        if let Some(c) = check {
            self.check = c;
        }
        self.held = false;
    }

    /// Consumes one complete envelope from the front of `buf`, like [`crate::decode`]: `Ok(None)`
    /// when more bytes are needed (or while held). An error is fatal to the transport.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if self.held {
            return Ok(None);
        }
        let frame = loop {
            let frame = match &mut self.check {
                RecvCheck::Plain => match peek_version(buf)? {
                    Some(KEYED_VERSION) => return Err(DecodeError::Auth),
                    _ => codec::decode(buf)?,
                },
                RecvCheck::Keyed(mac) => match peek_version(buf)? {
                    Some(VERSION) => return Err(DecodeError::Auth),
                    _ => decode_keyed(buf, mac)?,
                },
                RecvCheck::SkipEarly => match peek_version(buf)? {
                    Some(KEYED_VERSION) => {
                        if skip_keyed(buf)? {
                            continue;
                        }
                        return Ok(None);
                    }
                    // Under TLS the 0-RTT frames are plain: skipped too, once decoded.
                    _ => match codec::decode(buf)? {
                        Some(f)
                            if !f.is_handshake() && !matches!(f.body, Some(Body::GoAway(_))) =>
                        {
                            continue
                        }
                        other => other,
                    },
                },
            };
            break frame;
        };
        if frame.as_ref().is_some_and(Frame::is_handshake) {
            self.held = true;
        }
        Ok(frame)
    }
}

/// Drops one keyed envelope unread; false if it is not complete yet.
fn skip_keyed(buf: &mut BytesMut) -> Result<bool, DecodeError> {
    let Some(head) = read_head(buf, KEYED_VERSION)? else {
        return Ok(false);
    };
    let total = head.header + head.len + MAC_LEN;
    if buf.len() < total {
        return Ok(false);
    }
    let _ = buf.split_to(total);
    Ok(true)
}

/// One keyed envelope. The frame is parsed before its MAC is checked, because the MAC's input
/// depends on where a Data payload lies; nothing of it is used unless the MAC verifies.
fn decode_keyed(buf: &mut BytesMut, mac: &mut FrameMac) -> Result<Option<Frame>, DecodeError> {
    let Some(head) = read_head(buf, KEYED_VERSION)? else {
        return Ok(None);
    };
    let checked = head.header + head.len;
    let total = checked + MAC_LEN;
    if buf.len() < total {
        return Ok(None);
    }
    let envelope: Bytes = buf.split_to(total).freeze();
    let parsed = Frame::decode(envelope.slice(head.header..checked));
    let want = match &parsed {
        Ok(Frame {
            body: Some(Body::Data(d)),
        }) if !d.payload.is_empty() => match payload_range(&envelope[..checked], &d.payload) {
            Some((start, end)) => mac.split(
                &envelope[..start],
                &envelope[start..end],
                &envelope[end..checked],
            ),
            None => mac.whole(&envelope[..checked]),
        },
        _ => mac.whole(&envelope[..checked]),
    };
    if !want.is_some_and(|w| tags_equal(&w, &envelope[checked..total])) {
        return Err(DecodeError::Auth);
    }
    parsed
        .map(Some)
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Where `payload` (a slice the parser cut from `env`) lies within `env`.
fn payload_range(env: &[u8], payload: &[u8]) -> Option<(usize, usize)> {
    let start = (payload.as_ptr() as usize).checked_sub(env.as_ptr() as usize)?;
    let end = start.checked_add(payload.len())?;
    (end <= env.len()).then_some((start, end))
}

/// Appends one keyed envelope holding `frame` to `out` (contiguously; [`crate::Segments`]
/// writes large payloads without copying them, to the same bytes).
pub(crate) fn encode_keyed(frame: &Frame, mac: &mut FrameMac, out: &mut BytesMut) {
    let start = out.len();
    match &frame.body {
        Some(Body::Data(d)) if !d.payload.is_empty() => {
            write_data_head(d, KEYED_VERSION, out);
            let head_end = out.len();
            out.put_slice(&d.payload);
            let tail = data_tail(d);
            out.put_slice(tail);
            // No tag only past ring's 64 GiB limit; zeros then fail at the peer.
            let tag = mac.split(&out[start..head_end], &d.payload, tail);
            out.put_slice(&tag.unwrap_or([0; MAC_LEN]));
        }
        _ => {
            let len = frame.encoded_len();
            out.reserve(20 + len + MAC_LEN);
            prost::encoding::encode_varint(KEYED_VERSION, out);
            prost::encoding::encode_varint(len as u64, out);
            frame.encode_raw(out);
            let tag = mac.whole(&out[start..]);
            out.put_slice(&tag.unwrap_or([0; MAC_LEN]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Data, Open, Ping};

    fn data(len: usize, fin: bool) -> Frame {
        Frame::new(Body::Data(Data {
            stream: 5,
            offset: 99,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
            fin,
        }))
    }

    fn keyed(frames: &[Frame]) -> BytesMut {
        let mut mac = FrameMac::new(&[3; 32]);
        let mut out = BytesMut::new();
        for f in frames {
            encode_keyed(f, &mut mac, &mut out);
        }
        out
    }

    fn receiver() -> Decoder {
        Decoder {
            check: RecvCheck::Keyed(Box::new(FrameMac::new(&[3; 32]))),
            held: false,
        }
    }

    fn frames() -> Vec<Frame> {
        vec![
            data(10, false),
            Frame::new(Body::Ping(Ping { timepoint_us: 3 })),
            data(0, true),
            data(70_000.min(crate::MAX_DATA_PAYLOAD), true),
            Frame::new(Body::Open(Open::default())),
        ]
    }

    #[test]
    fn round_trip() {
        let frames = frames();
        let mut buf = keyed(&frames);
        let mut d = receiver();
        for f in &frames {
            assert_eq!(d.decode(&mut buf).unwrap().as_ref(), Some(f));
        }
        assert!(buf.is_empty());
        assert_eq!(d.decode(&mut buf), Ok(None));
    }

    #[test]
    fn every_flipped_byte_fails() {
        let whole = keyed(&[data(40, true)]);
        for i in 0..whole.len() {
            let mut b = whole.clone();
            b[i] ^= 0x01;
            let r = receiver().decode(&mut b);
            assert!(
                matches!(r, Err(_) | Ok(None)),
                "byte {i}: {r:?} (a changed length only waits for more)"
            );
            assert!(!matches!(r, Ok(Some(_))), "byte {i}");
        }
    }

    #[test]
    fn dropped_reordered_and_replayed_envelopes_fail() {
        let frames = frames();
        let one = keyed(&frames[..1]);
        let two = keyed(&frames[..2]);
        let second = two[one.len()..].to_vec();
        // Dropped: the second envelope first.
        assert_eq!(
            receiver().decode(&mut BytesMut::from(&second[..])),
            Err(DecodeError::Auth)
        );
        // Replayed: the first one twice.
        let mut d = receiver();
        let mut b = one.clone();
        b.extend_from_slice(&one);
        assert!(d.decode(&mut b).unwrap().is_some());
        assert_eq!(d.decode(&mut b), Err(DecodeError::Auth));
        // Injected in clear, or with another key.
        let mut plain = BytesMut::new();
        codec::encode(&frames[1], &mut plain);
        assert_eq!(receiver().decode(&mut plain), Err(DecodeError::Auth));
        let mut other = FrameMac::new(&[4; 32]);
        let mut forged = BytesMut::new();
        encode_keyed(&frames[1], &mut other, &mut forged);
        assert_eq!(receiver().decode(&mut forged), Err(DecodeError::Auth));
    }

    #[test]
    fn plain_decoder_refuses_keyed_and_holds_after_handshake_frames() {
        let mut d = Decoder::new();
        assert_eq!(d.decode(&mut keyed(&frames()[..1])), Err(DecodeError::Auth));
        let mut buf = BytesMut::new();
        let hello = Frame::new(Body::Hello(crate::frame::Hello::default()));
        codec::encode(&hello, &mut buf);
        codec::encode(&frames()[1], &mut buf);
        let mut d = Decoder::new();
        assert_eq!(d.decode(&mut buf).unwrap(), Some(hello));
        assert!(d.is_held());
        assert_eq!(d.decode(&mut buf), Ok(None));
        d.set(None);
        assert!(d.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn skip_early_drops_keyed_until_a_plain_envelope() {
        let mut buf = keyed(&frames());
        let auth = Frame::new(Body::Auth(crate::frame::Auth::default()));
        codec::encode(&auth, &mut buf);
        let mut d = Decoder {
            check: RecvCheck::SkipEarly,
            held: false,
        };
        // Incomplete keyed envelopes wait.
        let mut part = BytesMut::from(&buf[..5]);
        assert_eq!(d.decode(&mut part), Ok(None));
        assert_eq!(d.decode(&mut buf).unwrap(), Some(auth));
        assert!(buf.is_empty());
    }
}
