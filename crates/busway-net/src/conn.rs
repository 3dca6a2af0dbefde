//! A connected stream socket, TCP or Unix.
//!
//! Sessions read and write the same socket from two directions at once, so every operation here
//! takes `&self` (readiness + `try_*`), never `&mut self`: both halves of a copy loop can borrow it
//! without splitting. Reads allocate their buffer only once the socket is readable, so an idle
//! session holds no read buffer.

use std::io::{self, Read};
use std::net::Shutdown;

use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Reads once; a short read is reported to tokio as `WouldBlock` (so it clears the readiness it
/// cached) with the count kept in `short`.
fn read_clearing(
    sock: SockRef<'_>,
    buf: &mut [u8],
    short: &mut Option<usize>,
) -> io::Result<usize> {
    let n = (&*sock).read(buf)?;
    if n > 0 && n < buf.len() {
        *short = Some(n);
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

#[derive(Debug)]
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A bus transport's driver owns its socket and polls it as a stream; sessions use the `&self`
/// methods below instead.
impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Conn {
    /// Wraps a TCP stream, with Nagle off: busway forwards what it reads at once and relies on
    /// its own batching, like HAProxy does with `option tcp-smart-*` off.
    pub fn tcp(s: TcpStream) -> Conn {
        let _ = s.set_nodelay(true);
        Conn::Tcp(s)
    }

    /// Waits until a read would make progress.
    ///
    /// Built on `poll_read_ready` rather than `readable()`: one task reads a socket, so the
    /// single waker slot is enough, and the future is a few bytes instead of a waiter node —
    /// which every idle session would otherwise carry twice.
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| match self {
            Conn::Tcp(s) => s.poll_read_ready(cx),
            Conn::Unix(s) => s.poll_read_ready(cx),
        })
        .await
    }

    /// Waits until a write would make progress (one writer per socket, like reads).
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| match self {
            Conn::Tcp(s) => s.poll_write_ready(cx),
            Conn::Unix(s) => s.poll_write_ready(cx),
        })
        .await
    }

    /// Non-blocking read into the spare capacity of `buf`.
    pub fn try_read_buf(&self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.try_read_buf(buf),
            Conn::Unix(s) => s.try_read_buf(buf),
        }
    }

    /// Non-blocking read into a slice.
    ///
    /// A read that returns less than `buf` holds proves the socket's receive queue is empty, so
    /// its readiness is cleared on the spot (what tokio's own `poll_read` does): the next wait
    /// goes straight to epoll instead of costing one more `recv` that would only say `EAGAIN`.
    /// For request/response traffic that is one syscall saved per message.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut short = None;
        let r = match self {
            Conn::Tcp(s) => s.try_io(Interest::READABLE, || {
                read_clearing(SockRef::from(s), buf, &mut short)
            }),
            Conn::Unix(s) => s.try_io(Interest::READABLE, || {
                read_clearing(SockRef::from(s), buf, &mut short)
            }),
        };
        match (r, short) {
            (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            (r, _) => r,
        }
    }

    /// Non-blocking write.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.try_write(buf),
            Conn::Unix(s) => s.try_write(buf),
        }
    }

    /// Non-blocking vectored write.
    pub fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.try_write_vectored(bufs),
            Conn::Unix(s) => s.try_write_vectored(bufs),
        }
    }

    /// Reads whatever is available (up to `max` bytes) into a fresh buffer; `Ok(None)` is EOF.
    pub async fn read_chunk(&self, max: usize) -> io::Result<Option<bytes::Bytes>> {
        loop {
            self.readable().await?;
            let mut buf = bytes::BytesMut::with_capacity(max);
            match self.try_read_buf(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(buf.freeze())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `buf` until it is empty, as far as the socket takes it now; `Pending` (with the
    /// waker registered) when it is full. A hand-written poll instead of an `async fn`: a
    /// session keeps one of these in its state for each direction, so its size is every idle
    /// session's memory.
    pub fn poll_write_all(
        &self,
        cx: &mut Context<'_>,
        buf: &mut bytes::Bytes,
    ) -> Poll<io::Result<()>> {
        use bytes::Buf;
        while !buf.is_empty() {
            match self.try_write(buf) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => buf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = match self {
                        Conn::Tcp(s) => s.poll_write_ready(cx),
                        Conn::Unix(s) => s.poll_write_ready(cx),
                    };
                    if let Poll::Ready(Err(e)) = ready {
                        return Poll::Ready(Err(e));
                    }
                    if ready.is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.try_write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Half-close: the peer reads EOF after everything already written.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    /// Closes both directions now, so the peer sees the end even while a task still holds us.
    pub fn shutdown_both(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Both)
    }

    /// Closes with a reset instead of a FIN (TCP: `SO_LINGER` 0), so the peer cannot take what
    /// it got for the whole stream and the kernel drops unsent bytes at once. A Unix socket has
    /// no reset: it just closes.
    pub fn abort(self) {
        if let Conn::Tcp(s) = &self {
            let _ = SockRef::from(s).set_linger(Some(std::time::Duration::ZERO));
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => socket2::SockRef::from(s).shutdown(how),
            Conn::Unix(s) => socket2::SockRef::from(s).shutdown(how),
        }
    }

    /// A printable form of the remote address, for logs and the admin API.
    pub fn peer_label(&self) -> String {
        match self {
            Conn::Tcp(s) => s
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp:?".into()),
            Conn::Unix(s) => s
                .peer_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "unix".into()),
        }
    }
}
