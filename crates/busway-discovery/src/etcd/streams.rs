//! The two long-lived bidirectional streams: a lease's keepalives and the watch.
//!
//! Each keeps the sending half of its requests with it: gRPC ends a stream's request side when
//! that half is dropped, and the keepalive needs it for every later request.

use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::pb::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, WatchRequest, WatchResponse,
};
use super::Error;

/// Requests queued on a stream before a send waits. Discovery sends one keepalive every TTL/3
/// and none on the watch after its create request, so a few are plenty.
pub(super) const QUEUE: usize = 16;

/// The request side of a keepalive stream: one request renews the lease once.
#[derive(Debug)]
pub(crate) struct LeaseKeeper {
    pub(super) id: i64,
    pub(super) requests: mpsc::Sender<LeaseKeepAliveRequest>,
}

impl LeaseKeeper {
    /// Asks etcd to renew the lease; the answer arrives on [`KeepAlives`].
    pub(crate) async fn keep_alive(&mut self) -> Result<(), Error> {
        self.requests
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| Error::Closed("lease keepalive"))
    }
}

/// etcd's answers to the keepalives: the lease's new TTL, 0 once it is gone.
#[derive(Debug)]
pub(crate) struct KeepAlives(pub(super) Streaming<LeaseKeepAliveResponse>);

impl KeepAlives {
    /// The next answer; `None` when etcd ended the stream.
    pub(crate) async fn message(&mut self) -> Result<Option<LeaseKeepAliveResponse>, Error> {
        Ok(self.0.message().await?)
    }
}

/// One watch: its created (or canceled) answer first, then its events.
#[derive(Debug)]
pub(crate) struct WatchStream {
    /// Held, never used: dropping it would end the request side of the stream.
    pub(super) _requests: mpsc::Sender<WatchRequest>,
    pub(super) answers: Streaming<WatchResponse>,
}

impl WatchStream {
    /// The next answer; `None` when etcd ended the stream.
    pub(crate) async fn message(&mut self) -> Result<Option<WatchResponse>, Error> {
        Ok(self.answers.message().await?)
    }
}

/// A request stream for tonic, fed by the returned sender.
pub(super) fn requests<T>() -> (mpsc::Sender<T>, ReceiverStream<T>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (tx, ReceiverStream::new(rx))
}
