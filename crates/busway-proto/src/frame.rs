//! The frames of the bus protocol, as protobuf messages.
//!
//! Written by hand with prost's derive macros instead of generated from a `.proto` file so the
//! build needs neither `protoc` nor a build script; docs/PROTOCOL.md lists the same field numbers
//! and is the reference other implementations should follow. Field numbers are the wire contract:
//! never renumber, only add.

use std::collections::HashMap;

use bytes::Bytes;

/// One frame: exactly one of the bodies below.
///
/// `body` is `None` when the peer sent a frame type this version does not know (a newer peer):
/// the codec still accepts it so that adding frame types later is not a breaking change.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13")]
    pub body: Option<Body>,
}

/// The frame types, with their oneof tag numbers.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "1")]
    Hello(Hello),
    #[prost(message, tag = "2")]
    Challenge(Challenge),
    #[prost(message, tag = "3")]
    Auth(Auth),
    #[prost(message, tag = "4")]
    Open(Open),
    #[prost(message, tag = "5")]
    Data(Data),
    #[prost(message, tag = "6")]
    Window(Window),
    #[prost(message, tag = "7")]
    Reset(Reset),
    #[prost(message, tag = "8")]
    Ping(Ping),
    #[prost(message, tag = "9")]
    Pong(Pong),
    #[prost(message, tag = "10")]
    GoAway(GoAway),
    #[prost(message, tag = "11")]
    Accept(Accept),
    #[prost(message, tag = "12")]
    Ticket(Ticket),
    #[prost(message, tag = "13")]
    Ack(Ack),
}

/// The initiator's first frame, always in clear. It names nobody: no node name, namespace or
/// labels travel before the peer proved the secret (docs/PROTOCOL.md, 3).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    /// [`crate::HANDSHAKE_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// 32 fresh random bytes.
    #[prost(bytes = "bytes", tag = "2")]
    pub nonce: Bytes,
    /// A resumption ticket from an earlier transport to the same acceptor (opaque to us).
    #[prost(bytes = "bytes", tag = "3")]
    pub ticket: Bytes,
    /// The id of the token the initiator proves, instead of a shared secret.
    #[prost(string, tag = "4")]
    pub token_id: String,
    /// With a ticket: the initiator's [`Info`], sealed with a key from the ticket's resumption
    /// secret; its AEAD tag is the initiator's proof.
    #[prost(bytes = "bytes", tag = "5")]
    pub info: Bytes,
    /// The Auth follows at once, without waiting for a Challenge: only under TLS with a channel
    /// binding, which supplies the freshness the acceptor's nonce would.
    #[prost(bool, tag = "6")]
    pub eager: bool,
}

/// The acceptor's answer to a [`Hello`] that is not resumed: its nonce, nothing else.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Challenge {
    /// 32 bytes, fresh per connection (a keyed hash of the Hello's nonce, a coarse time
    /// bucket and the connection's own random bytes).
    #[prost(bytes = "bytes", tag = "1")]
    pub nonce: Bytes,
}

/// The initiator's identity and parameters, sealed when it proves a secret or token.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Auth {
    /// A protobuf [`Info`]: AES-256-GCM ciphertext and tag when `sealed`, else in clear.
    #[prost(bytes = "bytes", tag = "1")]
    pub info: Bytes,
    /// Whether `info` is sealed, i.e. whether the initiator proves anything.
    #[prost(bool, tag = "2")]
    pub sealed: bool,
}

/// The acceptor's identity and parameters, sent once the initiator's proof verified.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Accept {
    /// The acceptor's nonce, on a resumed transport (which had no Challenge); empty otherwise.
    #[prost(bytes = "bytes", tag = "1")]
    pub nonce: Bytes,
    /// A protobuf [`Info`], sealed like [`Auth::info`] with the acceptor's key.
    #[prost(bytes = "bytes", tag = "2")]
    pub info: Bytes,
    #[prost(bool, tag = "3")]
    pub sealed: bool,
}

/// A resumption ticket for the initiator's next transport to this acceptor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ticket {
    /// Opaque to the initiator: sealed with the acceptor's ticket key.
    #[prost(bytes = "bytes", tag = "1")]
    pub ticket: Bytes,
    /// Seconds the ticket stays valid.
    #[prost(uint32, tag = "2")]
    pub lifetime_s: u32,
}

/// What each side tells about itself in the handshake, inside [`Auth`] and [`Accept`] (and a
/// resuming [`Hello`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub node: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(map = "string, string", tag = "3")]
    pub labels: HashMap<String, String>,
    #[prost(string, repeated, tag = "4")]
    pub capabilities: Vec<String>,
    /// Largest encoded frame the sender accepts.
    #[prost(uint32, tag = "5")]
    pub max_frame: u32,
    /// Initial credit the sender grants the peer on every stream.
    #[prost(uint32, tag = "6")]
    pub stream_window: u32,
    /// Initial credit the sender grants the peer over the whole transport.
    #[prost(uint32, tag = "7")]
    pub conn_window: u32,
}

/// A new stream, i.e. a new client session.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Open {
    #[prost(uint64, tag = "1")]
    pub stream: u64,
    #[prost(string, tag = "2")]
    pub service: String,
    #[prost(string, tag = "3")]
    pub session_id: String,
    /// The client's address as the ingress saw it.
    #[prost(string, tag = "4")]
    pub client: String,
    #[prost(string, tag = "5")]
    pub mode: String,
    #[prost(map = "string, string", tag = "6")]
    pub labels: HashMap<String, String>,
    /// How many nodes the session passed before this one (`path.len()`), for readers that
    /// only count.
    #[prost(uint32, tag = "7")]
    pub hops: u32,
    /// The nodes the session passed, as `namespace/name#INSTANCE` (INSTANCE drawn by each
    /// process at start), the ingress first: a node that finds
    /// itself here, or a path longer than [`MAX_PATH`](crate::MAX_PATH), refuses the session
    /// (reset `loop`), so no configuration can make a session circle.
    #[prost(string, repeated, tag = "8")]
    pub path: Vec<String>,
    /// The node the session is for, as `namespace/name`, when the ingress chose one (a
    /// discovered node); a relay carries it on towards that node. Empty: whichever node serves
    /// the service.
    #[prost(string, tag = "9")]
    pub to: String,
    /// Present when the stream is one link of a multi-link session (docs/PROTOCOL.md, 9): a
    /// carrier, whose Data offsets are the session's and which is acknowledged by [`Ack`].
    /// Only between two nodes that both announced [`crate::CAP_MULTILINK`].
    #[prost(message, optional, tag = "16")]
    pub link: Option<Link>,
}

/// Which multi-link session a carrier stream belongs to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Link {
    /// The session's key, [`crate::LINK_KEY_LEN`] random bytes the opener chose: the same on
    /// every carrier of the session, unique among the sessions between the two nodes.
    #[prost(bytes = "bytes", tag = "1")]
    pub session: bytes::Bytes,
    /// This carrier joins a session already opened on another transport; it never creates one
    /// (a late join for a session that has ended is refused, not a new session).
    #[prost(bool, tag = "2")]
    pub join: bool,
}

/// Stream bytes. `payload` is a slice of the receive buffer, not a copy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Data {
    #[prost(uint64, tag = "1")]
    pub stream: u64,
    /// Byte offset of `payload` within the stream.
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    #[prost(bytes = "bytes", tag = "3")]
    pub payload: Bytes,
    /// The sender will send no more bytes on this stream (half-close).
    #[prost(bool, tag = "4")]
    pub fin: bool,
}

/// More send credit for the receiver of this frame. Stream 0 is the whole transport.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Window {
    #[prost(uint64, tag = "1")]
    pub stream: u64,
    #[prost(uint32, tag = "2")]
    pub credit: u32,
}

/// A multi-link session's acknowledgement, on any of its carriers: the receiving application
/// has released every byte below `offset` (so the sender may forget them, and may have bytes
/// up to `offset` + the receiver's `stream_window` outstanding), and with `fin` it also has the
/// sender's fin.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    /// The carrier stream on this transport.
    #[prost(uint64, tag = "1")]
    pub stream: u64,
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    #[prost(bool, tag = "3")]
    pub fin: bool,
}

/// Abort one stream; `code` is a [`crate::ResetCode`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reset {
    #[prost(uint64, tag = "1")]
    pub stream: u64,
    #[prost(uint32, tag = "2")]
    pub code: u32,
    #[prost(string, tag = "3")]
    pub reason: String,
}

/// Liveness probe; `timepoint_us` is opaque to the receiver, which echoes it in a [`Pong`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ping {
    #[prost(uint64, tag = "1")]
    pub timepoint_us: u64,
}

/// Answer to a [`Ping`], echoing its timepoint so the pinger measures the round trip.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Pong {
    #[prost(uint64, tag = "1")]
    pub timepoint_us: u64,
}

/// The sender accepts no new streams; open ones go on. Before the handshake completes it
/// aborts the handshake, `reason` being the error label.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GoAway {
    #[prost(string, tag = "1")]
    pub reason: String,
}

impl Frame {
    /// Wraps a body; saves callers the `Some(..)` noise.
    pub fn new(body: Body) -> Frame {
        Frame { body: Some(body) }
    }

    /// Short name of the frame type, for logs and error messages.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            None => "unknown",
            Some(Body::Hello(_)) => "hello",
            Some(Body::Challenge(_)) => "challenge",
            Some(Body::Auth(_)) => "auth",
            Some(Body::Open(_)) => "open",
            Some(Body::Data(_)) => "data",
            Some(Body::Window(_)) => "window",
            Some(Body::Reset(_)) => "reset",
            Some(Body::Ping(_)) => "ping",
            Some(Body::Pong(_)) => "pong",
            Some(Body::GoAway(_)) => "go_away",
            Some(Body::Accept(_)) => "accept",
            Some(Body::Ticket(_)) => "ticket",
            Some(Body::Ack(_)) => "ack",
        }
    }

    /// Hello, Challenge, Auth and Accept: always in plain envelopes (they carry their own
    /// proofs), and after each the receiver's envelope check may change.
    pub fn is_handshake(&self) -> bool {
        matches!(
            self.body,
            Some(Body::Hello(_) | Body::Challenge(_) | Body::Auth(_) | Body::Accept(_))
        )
    }
}
