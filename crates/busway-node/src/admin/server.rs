//! One admin connection: hyper's HTTP/1.1 server with keep-alive over the accepted socket
//! (TCP or Unix: anything [`Conn`] is), or over TLS on it with `[admin.tls]`, under the
//! write-stall guard, and a short lingering close.

use std::time::Duration;

use axum::Router;
use std::sync::Arc;

use busway_net::tls::{ServerConfig, TlsAcceptor};
use busway_net::Conn;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::limits::{Limits, HARD_HEAD};
use super::stall::Stalled;

/// hyper's read buffer: a whole head up to [`HARD_HEAD`] must fit, and bodies are read through
/// it in pieces of at most this.
const READ_BUFFER: usize = HARD_HEAD + 16 * 1024;

/// How long, and for how many bytes, a closing connection keeps reading what the client still
/// sends; see [`linger`].
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 2 * 1024 * 1024;

/// Serves requests on `conn` until the client closes it, asks to close it, breaks a limit, or
/// an answer ends the connection (a body that was refused unread). With `tls`, the connection
/// is HTTPS: its TLS handshake must end within the time a client has to send a request.
pub(super) async fn serve(app: Router, limits: Limits, conn: Conn, tls: Option<Arc<ServerConfig>>) {
    let Some(config) = tls else {
        return serve_on(app, limits, conn).await;
    };
    let acceptor = TlsAcceptor::from(config);
    match tokio::time::timeout(limits.request_timeout, acceptor.accept(conn)).await {
        Ok(Ok(stream)) => serve_on(app, limits, stream).await,
        // Plain HTTP to the HTTPS port, a client that does not trust our certificate, a port
        // scan: as with a head that does not parse, nothing to tell but a debugging operator.
        Ok(Err(e)) => tracing::debug!(error = %e, "admin TLS handshake failed"),
        Err(_) => tracing::debug!("admin connection closed: no TLS handshake in time"),
    }
}

/// Serves HTTP/1.1 on `io`, plain or TLS.
async fn serve_on<S>(app: Router, limits: Limits, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Stalled::new(io, limits.write_stall));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .keep_alive(true)
        .max_buf_size(READ_BUFFER)
        .max_header_size(HARD_HEAD);
    let served = http
        .serve_connection(io, TowerToHyperService::new(app))
        .without_shutdown()
        .await;
    match served {
        Ok(parts) => linger(parts.io.into_inner().into_inner()).await,
        // A head that timed out or did not parse, a client that went away or stopped reading:
        // nothing to tell anyone but a debugging operator.
        Err(e) => tracing::debug!(error = %e, "admin connection closed"),
    }
}

/// Closes our side (after TLS's close_notify), then reads and drops what the client still
/// sends for a moment before the socket is closed. An answer given without reading the whole
/// request (a 413 for a declared length, a 401 before the body) would otherwise be followed by
/// the kernel's reset for the unread bytes, and a client still sending its body could lose the
/// answer to that reset.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        // On the heap, and only here: every connection's task would carry it otherwise.
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
