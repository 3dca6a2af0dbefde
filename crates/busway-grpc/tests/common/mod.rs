//! An in-process reference upstream on a loopback port and a plain tonic client of it, so the
//! reference's answers can be checked message by message without busway in between.

use std::net::SocketAddr;
use std::time::Duration;

use busway_grpc::pb::upstream_peer_service_client::UpstreamPeerServiceClient;
use busway_grpc::pb::{DownstreamEvent, InputStreamRequest, LiveResult, OutputStreamRequest};
use busway_grpc::reference::{Controls, Options, Reference};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

/// How long any single answer may take before a test fails rather than hangs.
pub const ANSWER: Duration = Duration::from_secs(5);

/// A reference upstream serving on `127.0.0.1:0`; stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub controls: Controls,
    _stop: oneshot::Sender<()>,
}

impl Server {
    pub async fn start(opts: Options) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let server = Reference::new(opts);
        let controls = server.controls.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, None, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            controls,
            _stop: stop,
        }
    }

    /// A new client on its own HTTP/2 connection.
    pub async fn client(&self) -> UpstreamPeerServiceClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(ANSWER)
            .connect()
            .await
            .expect("connect to the reference upstream");
        UpstreamPeerServiceClient::new(channel).max_decoding_message_size(64 << 20)
    }

    /// A new `bidirectionalStreaming` call on a new connection.
    pub async fn call(&self) -> Call {
        let mut client = self.client().await;
        let (tx, rx) = mpsc::channel(1);
        let replies = client
            .bidirectional_streaming(ReceiverStream::new(rx))
            .await
            .expect("bidirectionalStreaming")
            .into_inner();
        Call { tx, replies }
    }

    /// A new `live` call on a new connection.
    pub async fn live(&self) -> Live {
        let mut client = self.client().await;
        let (tx, rx) = mpsc::channel(16);
        let results = client
            .live(ReceiverStream::new(rx))
            .await
            .expect("live")
            .into_inner();
        Live { tx, results }
    }
}

/// One `bidirectionalStreaming` call.
pub struct Call {
    pub tx: mpsc::Sender<InputStreamRequest>,
    pub replies: Streaming<OutputStreamRequest>,
}

impl Call {
    pub async fn data(&self, uuid: &str, payload: impl Into<Bytes>) {
        self.send(uuid, payload.into(), DownstreamEvent::Data).await;
    }

    pub async fn send(&self, uuid: &str, payload: Bytes, event: DownstreamEvent) {
        let m = InputStreamRequest {
            time: busway_grpc::time::now(),
            client_uuid: uuid.to_string(),
            payload,
            event: event as i32,
        };
        self.tx.send(m).await.expect("the call takes messages");
    }

    /// The next reply; fails the test if none comes in time.
    pub async fn reply(&mut self) -> OutputStreamRequest {
        tokio::time::timeout(ANSWER, self.replies.message())
            .await
            .expect("a reply in time")
            .expect("the call is healthy")
            .expect("the call is open")
    }

    /// Whether a reply arrives within `wait`.
    pub async fn replies_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.replies.message())
            .await
            .is_ok()
    }
}

/// One `live` call.
pub struct Live {
    pub tx: mpsc::Sender<()>,
    pub results: Streaming<LiveResult>,
}

impl Live {
    pub async fn beat(&self) {
        self.tx.send(()).await.expect("the call takes heartbeats");
    }

    /// The next result, or `None` if there is none within `wait`.
    pub async fn result_within(&mut self, wait: Duration) -> Option<LiveResult> {
        match tokio::time::timeout(wait, self.results.message()).await {
            Ok(Ok(Some(r))) => Some(r),
            Ok(other) => panic!("the live call ended: {other:?}"),
            Err(_) => None,
        }
    }
}
