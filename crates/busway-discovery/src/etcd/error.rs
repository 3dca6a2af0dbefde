//! What an etcd call can fail with: one type for connecting, the calls and the streams, so that
//! `calls::describe` can turn any of them into one short line.

use std::fmt;

#[derive(Debug)]
pub(crate) enum Error {
    /// An endpoint this client cannot dial: only `http://` (plaintext gRPC, as CONTRACT 6 names
    /// its endpoints; there is no TLS to etcd).
    Endpoint(String),
    /// No connection: the URL, the TCP connect (within its timeout) or the HTTP/2 handshake.
    Transport(tonic::transport::Error),
    /// etcd, or the gRPC layer under the call, answered with an error status.
    Status(tonic::Status),
    /// etcd answered the first keepalive of a lease with TTL 0: the lease is gone (it lapsed or
    /// was revoked), and a new one is needed.
    LeaseNotFound,
    /// A stream ended before it was of use, or its request side is gone (the call behind it
    /// ended); the name says which stream.
    Closed(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Endpoint(why) => f.write_str(why),
            Error::Transport(e) => write!(f, "{e}"),
            Error::Status(s) if s.message().is_empty() => write!(f, "{}", s.code()),
            Error::Status(s) => f.write_str(s.message()),
            Error::LeaseNotFound => f.write_str("lease not found"),
            Error::Closed(what) => write!(f, "the {what} stream ended"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            Error::Status(s) => Some(s),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        Error::Status(s)
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Error {
        Error::Transport(e)
    }
}
