//! An in-process reference upstream on a loopback port and a plain tonic client of it, so the
//! reference's answers can be checked message by message without busway in between; and a
//! gateway in front of it, for the tests of what the gateway sends.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use busway_config::{Balance, Distribute, GrpcConfig};
use busway_grpc::reference::Seen;
use busway_grpc::{Gateway, Settings};

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
    /// What it has read.
    pub seen: Arc<Seen>,
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
        let seen = server.seen();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, None, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            controls,
            seen,
            _stop: stop,
        }
    }

    /// A gateway (service `gw`) whose only upstream is this server, once that is healthy.
    pub async fn gateway(&self, lifecycle_events: bool) -> Arc<Gateway> {
        let grpc = GrpcConfig {
            distribute: Distribute::PerClient,
            ready_interval: Duration::from_millis(100),
            ready_timeout: Duration::from_secs(1),
            live_interval: Duration::from_millis(100),
            live_timeout: Duration::from_secs(2),
            active_window: Duration::from_secs(60),
            upstream_wait: ANSWER,
            lifecycle_events,
        };
        let settings = Settings {
            grpc,
            balance: Balance::RoundRobin,
            connect_timeout: ANSWER,
        };
        let addr = format!("grpc://{}", self.addr).parse().expect("an address");
        let gw = Gateway::start("gw", &[addr], settings);
        assert!(
            until(ANSWER, || gw.problem().is_none()).await,
            "{:?}",
            gw.problem()
        );
        gw
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

/// Polls `f` every 10 ms until it holds or `limit` passes; whether it held.
pub async fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// The value of one sample of the gateway's metrics, e.g.
/// `busway_grpc_events_dropped_total{service="gw"}`.
pub fn metric(gw: &Arc<Gateway>, series: &str) -> Option<u64> {
    let mut registry = busway_metrics::prometheus_client::registry::Registry::default();
    let gw = gw.clone();
    registry.register_collector(Box::new(busway_grpc::metrics::Collector::new(move || {
        vec![gw.clone()]
    })));
    let mut text = String::new();
    busway_metrics::prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .expect("encodes");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// One client read: the most the node puts in one message.
pub const CHUNK: usize = 16 * 1024;

/// A reference upstream that reads data and never answers it.
pub async fn sink() -> Server {
    Server::start(Options {
        mode: busway_grpc::reference::Mode::Sink,
        ..Options::default()
    })
    .await
}

impl Server {
    /// Stops reading, then fills `gw`'s queue for it (and the HTTP/2 window behind it) from a
    /// new downstream, a [`CHUNK`] at a time, until one is not taken within 300 ms. Returns that
    /// downstream and the bytes taken.
    pub async fn stall(&self, gw: &Arc<Gateway>) -> (busway_grpc::Downstream, u64) {
        self.controls.pause(true);
        let d = gw.attach("flooder".into()).await.expect("attached");
        let chunk = bytes::Bytes::from(vec![7u8; CHUNK]);
        let mut taken = 0u64;
        let stall = Duration::from_millis(300);
        while let Ok(r) = tokio::time::timeout(stall, d.send(chunk.clone())).await {
            r.expect("the downstream is open");
            taken += CHUNK as u64;
            assert!(
                taken < 64 << 20,
                "64 MiB taken for an upstream that reads nothing"
            );
        }
        (d, taken)
    }
}
