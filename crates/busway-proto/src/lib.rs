//! The bus protocol of busway, sans IO.
//!
//! Client sessions become streams multiplexed over one authenticated transport between two
//! nodes. This crate holds the whole protocol and none of the I/O: the envelope codec
//! ([`encode`]/[`decode`]), the frames ([`Frame`]), and the [`Connection`] state machine
//! (handshake, streams, credit flow control, liveness). A driver owns the socket and the clock
//! and moves bytes, instants and events in and out, which keeps every rule testable byte by
//! byte. docs/PROTOCOL.md is the wire reference.

mod accept;
mod app;
mod carrier;
mod carrier_api;
mod codec;
mod config;
mod connection;
mod error;
mod establish;
mod event;
pub mod frame;
mod handshake;
pub mod idmap;
mod inbound;
pub mod mac;
mod multilink;
mod outbox;
mod recv;
mod reset;
mod segments;
mod stream;
mod strike;
mod ticket;
mod ticket_held;
mod trust;
mod wire;

pub use carrier::{max_runs, Piece, BLOCK, CAP_MULTILINK, LINK_KEY_LEN};
pub use codec::{check, decode, encode, encoded_len, DecodeError, CHECK_LEN};
pub use config::{Config, OpenParams, PeerInfo, Side};
pub use connection::{
    Connection, FLOOD_WINDOW, MAX_PINGS_PER_WINDOW, MAX_REASON_LEN, MAX_REFUSALS_PER_WINDOW,
    MAX_STREAMS,
};
pub use error::{ProtoError, StreamError};
pub use event::Event;
pub use frame::{
    Accept, Ack, Auth, Body, Challenge, Data, Frame, GoAway, Hello, Info, Link, Open, Ping, Pong,
    Reset, Window,
};
pub use handshake::{
    HANDSHAKE_VERSION, MAX_EARLY_STREAMS, MAX_NONCE_LEN, MAX_TOKEN_ID_LEN, MIN_CONN_WINDOW,
    MIN_MAX_FRAME, MIN_NONCE_LEN, MIN_STREAM_WINDOW,
};
pub use mac::MAC_LEN;
pub use multilink::{LinkId, MultiStream};

/// A short public name of a shared secret (8 bytes of an HMAC keyed by it): what
/// [`Connection::verified_by`] reports, so a node can tell after a reload whether the secret
/// a transport was verified with is still listed, without keeping the secret per transport.
pub fn secret_fingerprint(secret: &[u8]) -> [u8; 8] {
    handshake::seal::fingerprint(secret)
}
pub use outbox::{MAX_CONTROL_BACKLOG, SEND_BACKLOG};
pub use recv::COPY_BELOW;
pub use reset::ResetCode;
pub use segments::{Segments, ZERO_COPY_MIN};
pub use strike::{Strike, StrikeRegister, TICKET_ID_LEN};
pub use ticket::{
    Clock, Resumption, StateError, Ticket, DEFAULT_STRIKE_CAPACITY, MAX_TICKET_LEN,
    MAX_TICKET_LIFETIME,
};
pub use trust::{TokenBook, TokenCredential, TokenGrant, Trust};
pub use wire::{Decoder, Rekey, KEYED_VERSION};

/// Envelope version: the first varint of every plain envelope (CRC-32 checked; keyed ones carry
/// [`KEYED_VERSION`]). 3: handshake v2, keyed envelopes. Version 2 had the v1 handshake and 1
/// used XXH3: a node of another version fails at its first byte, with `version`.
pub const VERSION: u64 = 3;
/// Most payload bytes in one Data frame; larger writes are split.
pub const MAX_DATA_PAYLOAD: usize = 64 * 1024;
/// Longest encoded frame accepted: a full Data frame plus room for its fields, so no other
/// frame can be larger than the largest Data frame by much.
pub const MAX_FRAME_LEN: usize = MAX_DATA_PAYLOAD + 4096;
/// Most nodes an `Open`'s path may list (CONTRACT section 6): a longer one is a loop, or a
/// route no operator meant, and is refused with reset `loop`.
pub const MAX_PATH: usize = 8;
/// Credit granted per stream unless configured: bytes the peer may send before we consume.
pub const DEFAULT_STREAM_WINDOW: u32 = 256 * 1024;
/// Credit granted for the whole transport unless configured: payload bytes in flight or held
/// for the application over all streams — the cap on what a transport buffers.
pub const DEFAULT_CONN_WINDOW: u32 = 16 * 1024 * 1024;

/// `s` cut to at most `max` bytes at a character boundary: for text a peer supplied (service
/// names, reasons), which may be up to a frame long and must not flood logs.
pub fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
