//! Connecting one endpoint within a deadline.

use std::io;
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};

use crate::conn::Conn;
use crate::targets::EndpointAddr;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("{0}: connection refused")]
    Refused(String),
    #[error("{0}: connect timed out")]
    Timeout(String),
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

impl DialError {
    /// The `outcome` label of `busway_sessions_total` this failure ends a session with.
    pub fn outcome(&self) -> &'static str {
        match self {
            DialError::Refused(_) => "refused",
            DialError::Timeout(_) => "timeout",
            DialError::Io(..) => "error",
        }
    }
}

/// Connects `ep`, giving up after `timeout`.
pub async fn dial(ep: &EndpointAddr, timeout: Duration) -> Result<Conn, DialError> {
    let label = ep.to_string();
    let fut = async {
        match ep {
            EndpointAddr::Tcp(a) => TcpStream::connect(a).await.map(Conn::tcp),
            EndpointAddr::Unix(p) => UnixStream::connect(p).await.map(Conn::Unix),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(DialError::Timeout(label)),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e))
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            Err(DialError::Refused(label))
        }
        Ok(Err(e)) => Err(DialError::Io(label, e)),
    }
}

/// Connects a configured address directly (resolving a host name with the system resolver):
/// for mirrors, which are not target sets.
pub async fn dial_address(
    addr: &busway_config::Address,
    timeout: Duration,
) -> Result<Conn, DialError> {
    use busway_config::Address;
    let label = addr.to_string();
    let fut = async {
        match addr {
            Address::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
                .await
                .map(Conn::tcp),
            Address::Unix(p) => UnixStream::connect(p).await.map(Conn::Unix),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "not a socket address",
            )),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(DialError::Timeout(label)),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(DialError::Io(label, e)),
    }
}
