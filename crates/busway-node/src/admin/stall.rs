//! A socket whose writes fail once they have made no progress for a while.
//!
//! hyper has a timeout for reading a request head but none for writing an answer: a client that
//! asks for `/metrics` (or pipelines a thousand requests) and never reads would hold its
//! connection task, the answer's buffers and a descriptor for as long as it stays connected.
//! With this under hyper, a write that stays pending for `limit` ends in `TimedOut`, hyper drops
//! the connection, and the task ends. Any progress restarts the clock, so a slow but reading
//! client is served; the timer is made only when a write has to wait.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

#[derive(Debug)]
pub struct Stalled<T> {
    inner: T,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Stalled<T> {
    pub fn new(inner: T, limit: Duration) -> Stalled<T> {
        Stalled {
            inner,
            limit,
            timer: None,
        }
    }

    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Passes a ready result through (clearing the clock); for a pending one, starts the clock
    /// if it is not running and fails once it has run out.
    fn watch<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.timer = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timer = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client took nothing for {limit:?}"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalled<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalled<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that never reads fills the pipe; the next write fails after the limit, not
    /// before.
    #[tokio::test(start_paused = true)]
    async fn a_write_without_progress_fails_after_the_limit() {
        let (a, _b) = tokio::io::duplex(1024);
        let mut s = Stalled::new(a, Duration::from_secs(10));
        s.write_all(&[0; 1024]).await.unwrap();
        let t0 = tokio::time::Instant::now();
        let e = s.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }

    /// A peer that reads slowly, but reads, keeps its connection.
    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_clock() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut got = 0;
            while got < 160 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                got += b.read(&mut buf).await.unwrap();
            }
            got
        });
        let mut s = Stalled::new(a, Duration::from_secs(10));
        s.write_all(&[0; 160]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 160);
    }
}
