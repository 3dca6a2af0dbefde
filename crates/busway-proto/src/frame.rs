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
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub body: Option<Body>,
}

/// The frame types, with their oneof tag numbers.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "1")]
    Hello(Hello),
    #[prost(message, tag = "2")]
    Welcome(Welcome),
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
}

/// First frame of the initiator (the side that dialled): who it is and what it grants.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub node: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(map = "string, string", tag = "4")]
    pub labels: HashMap<String, String>,
    #[prost(string, repeated, tag = "5")]
    pub capabilities: Vec<String>,
    /// Largest encoded frame the sender accepts.
    #[prost(uint32, tag = "6")]
    pub max_frame: u32,
    /// Initial credit the sender grants the peer on every stream.
    #[prost(uint32, tag = "7")]
    pub stream_window: u32,
    /// Initial credit the sender grants the peer over the whole transport.
    #[prost(uint32, tag = "8")]
    pub conn_window: u32,
    /// Fresh random bytes, so that proofs cannot be replayed across handshakes.
    #[prost(bytes = "bytes", tag = "9")]
    pub nonce: Bytes,
}

/// The acceptor's answer to [`Hello`]: the same fields plus its proof of the shared secret.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Welcome {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub node: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(map = "string, string", tag = "4")]
    pub labels: HashMap<String, String>,
    #[prost(string, repeated, tag = "5")]
    pub capabilities: Vec<String>,
    #[prost(uint32, tag = "6")]
    pub max_frame: u32,
    #[prost(uint32, tag = "7")]
    pub stream_window: u32,
    #[prost(uint32, tag = "8")]
    pub conn_window: u32,
    #[prost(bytes = "bytes", tag = "9")]
    pub nonce: Bytes,
    /// HMAC-SHA256 over the acceptor transcript; empty without a secret.
    #[prost(bytes = "bytes", tag = "10")]
    pub proof: Bytes,
}

impl Welcome {
    /// The acceptor's answer carries the same parameters as a `Hello`, plus its proof.
    pub fn from_hello(h: Hello, proof: Bytes) -> Welcome {
        Welcome {
            version: h.version,
            node: h.node,
            namespace: h.namespace,
            labels: h.labels,
            capabilities: h.capabilities,
            max_frame: h.max_frame,
            stream_window: h.stream_window,
            conn_window: h.conn_window,
            nonce: h.nonce,
            proof,
        }
    }
}

/// The initiator's proof of the shared secret, closing the handshake.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Auth {
    #[prost(bytes = "bytes", tag = "1")]
    pub proof: Bytes,
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
    /// Relays crossed so far, so a routing loop ends instead of circling.
    #[prost(uint32, tag = "7")]
    pub hops: u32,
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
            Some(Body::Welcome(_)) => "welcome",
            Some(Body::Auth(_)) => "auth",
            Some(Body::Open(_)) => "open",
            Some(Body::Data(_)) => "data",
            Some(Body::Window(_)) => "window",
            Some(Body::Reset(_)) => "reset",
            Some(Body::Ping(_)) => "ping",
            Some(Body::Pong(_)) => "pong",
            Some(Body::GoAway(_)) => "go_away",
        }
    }
}
