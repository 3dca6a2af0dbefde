//! One TLS handshake on a socket, and what it leaves for the bus handshake.
//!
//! A failed handshake is counted `busway_handshake_failures_total{reason="tls"}` by the node
//! that detects it (CONTRACT section 10): the listener for a missing or unknown client
//! certificate, a plaintext peer or one without TLS 1.3, the dialer for an unknown CA or a
//! name mismatch. The side that detects a failure sends an alert; the other side's handshake
//! then fails with that alert *received*, which [`Failure::detected_here`] tells apart, so that
//! one bad pair is counted once, where the cause lies.

use std::io;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// The label of the RFC 5705 / RFC 8446 section 7.5 exporter the bus handshake binds to.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-busway-bus";

/// 32 bytes exported from a TLS session, the same at both ends of it and unknown to anyone
/// else: bound into the bus handshake, they tie it to this TLS connection, so a handshake
/// relayed from another connection fails.
pub type Binding = [u8; 32];

/// Why a TLS handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// This side found the fault (and counts it); false when the peer refused us with an
    /// alert, or the connection was lost before either side could tell.
    pub detected_here: bool,
    /// For the log: what went wrong, in a few words and then rustls's own.
    pub reason: String,
    /// Those few words alone, a fixed phrase per kind of failure: what a log that keeps to a
    /// line per second per kind is keyed by, since anyone can make these failures at will.
    pub kind: &'static str,
}

/// Ciphertext read from the socket at once. rustls asks its socket for 4 KiB at a time (its
/// buffer grows by 4 KiB up to one record and shrinks back once the record is taken), which
/// makes four or five `recv` calls of every 16 KiB record; a read-ahead buffer under it turns
/// them into one call per 64 KiB, at the price of one copy of the ciphertext in memory. With
/// bench/compare's bulk setup (iperf3 through both nodes on one core, six runs each) that made
/// a third of the `recv` calls and took 13 % less CPU per GB (medians).
pub const READ_AHEAD: usize = 64 * 1024;

/// The socket under a TLS stream: `S` with its read-ahead buffer (writes go straight through).
pub type Buffered<S> = tokio::io::BufReader<S>;
/// An accepted TLS connection on `S`.
pub type ServerStream<S> = server::TlsStream<Buffered<S>>;
/// A dialled TLS connection on `S`.
pub type ClientStream<S> = client::TlsStream<Buffered<S>>;

/// Accepts a TLS connection on `io`.
pub async fn accept<S>(acceptor: &TlsAcceptor, io: S) -> Result<(ServerStream<S>, Binding), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = tokio::io::BufReader::with_capacity(READ_AHEAD, io);
    let stream = acceptor.accept(io).await.map_err(failure)?;
    let binding = export(stream.get_ref().1.export_keying_material(
        [0u8; 32],
        EXPORTER_LABEL,
        None,
    ))?;
    Ok((stream, binding))
}

/// Opens a TLS connection on `io` to a server that must prove `name`.
pub async fn connect<S>(
    connector: &TlsConnector,
    name: ServerName<'static>,
    io: S,
) -> Result<(ClientStream<S>, Binding), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = tokio::io::BufReader::with_capacity(READ_AHEAD, io);
    let stream = connector.connect(name, io).await.map_err(failure)?;
    let binding = export(stream.get_ref().1.export_keying_material(
        [0u8; 32],
        EXPORTER_LABEL,
        None,
    ))?;
    Ok((stream, binding))
}

fn export(r: Result<Binding, rustls::Error>) -> Result<Binding, Failure> {
    r.map_err(|e| Failure {
        detected_here: true,
        reason: format!("cannot export keying material: {e}"),
        kind: "cannot export keying material",
    })
}

/// Classifies what tokio-rustls returned: a rustls error inside the I/O error, or a plain
/// socket error.
fn failure(e: io::Error) -> Failure {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => Failure {
            detected_here: false,
            reason: format!("the peer refused the TLS handshake (alert {alert:?})"),
            kind: "the peer refused the TLS handshake",
        },
        Some(err) => Failure {
            detected_here: true,
            reason: format!("{}: {err}", what(err)),
            kind: what(err),
        },
        // Closed or reset before the handshake ended: the peer gave up, nothing to blame.
        None => Failure {
            detected_here: false,
            reason: format!("connection lost during the TLS handshake: {e}"),
            kind: "connection lost during the TLS handshake",
        },
    }
}

/// A few words for the log, before rustls's own description.
fn what(err: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "unknown CA: the certificate is not signed by a CA of `ca`"
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "name mismatch: the certificate does not carry the expected server name"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "expired certificate"
        }
        rustls::Error::InvalidCertificate(_) => "unacceptable certificate",
        rustls::Error::NoCertificatesPresented => "missing client certificate",
        rustls::Error::PeerIncompatible(_) => "the peer does not offer TLS 1.3",
        rustls::Error::InvalidMessage(_) => "not TLS (a plaintext peer?)",
        _ => "TLS handshake failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_received_is_the_other_side_s_finding() {
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        let f = failure(alert);
        assert!(!f.detected_here, "{f:?}");
        assert!(f.reason.contains("UnknownCA"), "{f:?}");

        let ours = failure(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(ours.detected_here);
        assert!(ours.reason.starts_with("unknown CA"), "{ours:?}");

        let lost = failure(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert!(!lost.detected_here);
    }
}
