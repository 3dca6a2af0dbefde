//! The reference upstream: a gRPC server of `proto/upstream.proto` that behaves like the original
//! project's Go test server, plus the modes busway's tests, demos and benchmarks need.
//!
//! - `salut` (default): every data message is answered with "Salut à toi cher downstream",
//!   alternately to the sender's uuid and to `BROADCAST_ALL` (per call), as the Go server does.
//! - `echo`: the payload goes back to its sender, prefixed with `tag`. Payloads starting with
//!   `@all:`, `@active:`, `@inactive:` or `@to:UUID:` send the rest as that kind of reply, and
//!   `@big:N` replies N bytes (to test message limits).
//! - `ready` answers `ready = !not_ready`; `live` answers one `LiveResult` per `Empty` unless
//!   `silent_live`. Both can be toggled while running ([`Controls`]).
//! - `sink`: data is read and counted, never answered (a pure consumer).
//! - `crash_after`: the process exits after that many data messages, as a crash would.
//! - `delay`: after each data message it waits before reading the next (a slow upstream), and
//!   [`Controls::pause`] stops it reading its `bidirectionalStreaming` calls at all while `ready`
//!   and `live` still answer (an upstream that is healthy but stuck).
//!
//! It prints one line per call started, per lifecycle event and (verbose) per data message, so
//! tests can see what an upstream saw, and counts them in [`Seen`].

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::pb::output_stream_request::{Broadcast, Target};
use crate::pb::upstream_peer_service_server::{UpstreamPeerService, UpstreamPeerServiceServer};
use crate::pb::{
    DownstreamEvent, InputStreamRequest, LiveResult, OutputStreamRequest, ReadyResult,
};

/// The original server's answer.
pub const SALUT: &str = "Salut à toi cher downstream";

/// Replies queued per call before the server stops reading that call (flow control).
pub const REPLY_QUEUE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Salut,
    Echo,
    Sink,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// Prefix of every echo.
    pub tag: String,
    pub not_ready: bool,
    pub silent_live: bool,
    /// Exit the process after this many data messages.
    pub crash_after: Option<u64>,
    /// Print a line per data message.
    pub verbose: bool,
    /// Wait this long after each data message before reading the next.
    pub delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Salut,
            tag: String::new(),
            not_ready: false,
            silent_live: false,
            crash_after: None,
            verbose: false,
            delay: Duration::ZERO,
        }
    }
}

/// Switches that can be flipped while the server runs (the binary maps them to signals).
#[derive(Clone, Debug)]
pub struct Controls {
    pub not_ready: Arc<AtomicBool>,
    pub silent_live: Arc<AtomicBool>,
    paused: Arc<watch::Sender<bool>>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            not_ready: Arc::default(),
            silent_live: Arc::default(),
            paused: Arc::new(watch::channel(false).0),
        }
    }
}

impl Controls {
    /// Stops (`true`) or resumes reading every `bidirectionalStreaming` call; `ready` and `live`
    /// go on answering. HTTP/2 flow control then holds the gateway back.
    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    async fn unpaused(&self) {
        let _ = self.paused.subscribe().wait_for(|p| !p).await;
    }

    /// Flips `ready`; returns whether it now answers `ready = true`.
    pub fn toggle_ready(&self) -> bool {
        self.not_ready.fetch_xor(true, Ordering::AcqRel)
    }
    /// Flips answering `live`; returns whether it now answers.
    pub fn toggle_live(&self) -> bool {
        self.silent_live.fetch_xor(true, Ordering::AcqRel)
    }
}

/// What the upstream has read, over all its calls.
#[derive(Debug, Default)]
pub struct Seen {
    pub data: AtomicU64,
    pub data_bytes: AtomicU64,
    pub connected: AtomicU64,
    pub disconnected: AtomicU64,
}

/// The service. Cheap to clone; clones share counters and controls.
#[derive(Clone, Debug)]
pub struct Reference {
    opts: Arc<Options>,
    pub controls: Controls,
    seen: Arc<Seen>,
    bidi_calls: Arc<AtomicU64>,
    live_calls: Arc<AtomicU64>,
}

impl Reference {
    pub fn new(opts: Options) -> Self {
        let controls = Controls::default();
        controls.not_ready.store(opts.not_ready, Ordering::Release);
        controls
            .silent_live
            .store(opts.silent_live, Ordering::Release);
        Reference {
            opts: Arc::new(opts),
            controls,
            seen: Arc::default(),
            bidi_calls: Arc::default(),
            live_calls: Arc::default(),
        }
    }

    /// What it has read so far.
    pub fn seen(&self) -> Arc<Seen> {
        self.seen.clone()
    }

    /// The tonic service, with message limits large enough for `@big:` tests.
    pub fn into_service(self) -> UpstreamPeerServiceServer<Reference> {
        UpstreamPeerServiceServer::new(self)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Serves on `listener` until `shutdown` resolves; with `tls` = (certificate chain, key),
    /// both PEM, over TLS.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<(Vec<u8>, Vec<u8>)>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        let mut server = tonic::transport::Server::builder();
        if let Some((cert, key)) = tls {
            let id = tonic::transport::Identity::from_pem(cert, key);
            server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(id))?;
        }
        server
            .tcp_nodelay(true)
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
    }

    /// The replies to one data message.
    fn answer(&self, m: InputStreamRequest, nth: u64) -> Vec<OutputStreamRequest> {
        let reply = |target, payload: Bytes| OutputStreamRequest {
            time: crate::time::now(),
            target: Some(target),
            payload,
        };
        let to_sender = |payload| reply(Target::ClientUuid(m.client_uuid.clone()), payload);
        let broadcast = |b: Broadcast, payload| reply(Target::Broadcast(b as i32), payload);
        match self.opts.mode {
            Mode::Sink => Vec::new(),
            Mode::Salut if nth.is_multiple_of(2) => {
                vec![to_sender(Bytes::from_static(SALUT.as_bytes()))]
            }
            Mode::Salut => vec![broadcast(
                Broadcast::All,
                Bytes::from_static(SALUT.as_bytes()),
            )],
            Mode::Echo => {
                let p = &m.payload;
                let rest = |prefix: &str| p.slice(prefix.len()..);
                if p.starts_with(b"@all:") {
                    vec![broadcast(Broadcast::All, rest("@all:"))]
                } else if p.starts_with(b"@active:") {
                    vec![broadcast(Broadcast::Active, rest("@active:"))]
                } else if p.starts_with(b"@inactive:") {
                    vec![broadcast(Broadcast::NotActive, rest("@inactive:"))]
                } else if let Some(to) = p.strip_prefix(b"@to:") {
                    let (uuid, text) = split_once(to, b':');
                    let uuid = String::from_utf8_lossy(uuid).to_string();
                    vec![reply(
                        Target::ClientUuid(uuid),
                        Bytes::copy_from_slice(text),
                    )]
                } else if let Some(n) = p.strip_prefix(b"@big:") {
                    let n: usize = std::str::from_utf8(n)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                    vec![to_sender(Bytes::from(vec![b'x'; n.min(64 << 20)]))]
                } else if self.opts.tag.is_empty() {
                    vec![to_sender(m.payload.clone())]
                } else {
                    let mut v = self.opts.tag.as_bytes().to_vec();
                    v.extend_from_slice(p);
                    vec![to_sender(Bytes::from(v))]
                }
            }
        }
    }
}

fn split_once(b: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match b.iter().position(|c| *c == sep) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

/// One line on stdout, flushed: tests read these while the server runs.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl UpstreamPeerService for Reference {
    type bidirectionalStreamingStream = ReplyStream<OutputStreamRequest>;
    type liveStream = ReplyStream<LiveResult>;

    async fn bidirectional_streaming(
        &self,
        request: Request<Streaming<InputStreamRequest>>,
    ) -> Result<Response<Self::bidirectionalStreamingStream>, Status> {
        let n = self.bidi_calls.fetch_add(1, Ordering::AcqRel) + 1;
        say(&format!("call bidirectionalStreaming {n}"));
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let me = self.clone();
        tokio::spawn(async move {
            let mut answered = 0u64;
            loop {
                me.controls.unpaused().await;
                let m = match inbound.message().await {
                    Ok(Some(m)) => m,
                    // The gateway ended its side: everything it sent was read.
                    Ok(None) => {
                        say(&format!("call bidirectionalStreaming {n} ended"));
                        return;
                    }
                    Err(st) => {
                        let why = crate::text::cap(st.message()).into_owned();
                        say(&format!("call bidirectionalStreaming {n} failed: {why}"));
                        return;
                    }
                };
                // The uuid is the gateway's to choose: cut it short before printing it.
                let uuid = crate::text::cap(&m.client_uuid);
                match DownstreamEvent::try_from(m.event) {
                    Ok(DownstreamEvent::Connected) => {
                        me.seen.connected.fetch_add(1, Ordering::AcqRel);
                        say(&format!("event {uuid} CONNECTED"));
                        continue;
                    }
                    Ok(DownstreamEvent::Disconnected) => {
                        me.seen.disconnected.fetch_add(1, Ordering::AcqRel);
                        say(&format!("event {uuid} DISCONNECTED"));
                        continue;
                    }
                    _ => {}
                }
                if me.opts.verbose {
                    say(&format!("data {uuid} {}", m.payload.len()));
                }
                drop(uuid);
                me.seen
                    .data_bytes
                    .fetch_add(m.payload.len() as u64, Ordering::AcqRel);
                let seen = me.seen.data.fetch_add(1, Ordering::AcqRel) + 1;
                if me.opts.crash_after.is_some_and(|limit| seen >= limit) {
                    say("crash");
                    std::process::exit(3);
                }
                for r in me.answer(m, answered) {
                    if tx.send(Ok(r)).await.is_err() {
                        return;
                    }
                }
                answered += 1;
                if !me.opts.delay.is_zero() {
                    tokio::time::sleep(me.opts.delay).await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn ready(&self, _: Request<()>) -> Result<Response<ReadyResult>, Status> {
        Ok(Response::new(ReadyResult {
            time: crate::time::now(),
            ready: !self.controls.not_ready.load(Ordering::Acquire),
        }))
    }

    async fn live(
        &self,
        request: Request<Streaming<()>>,
    ) -> Result<Response<Self::liveStream>, Status> {
        let n = self.live_calls.fetch_add(1, Ordering::AcqRel) + 1;
        say(&format!("call live {n}"));
        let mut beats = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let silent = self.controls.silent_live.clone();
        tokio::spawn(async move {
            while let Ok(Some(())) = beats.message().await {
                if silent.load(Ordering::Acquire) {
                    continue;
                }
                let r = LiveResult {
                    time: crate::time::now(),
                    live: true,
                };
                if tx.send(Ok(r)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
