//! Load for the gateway benchmark (bench/grpc): the same echo workload through busway's gateway
//! and straight to the upstreams with a tonic client, plus a mode that holds idle clients.
//!
//! ```text
//! gateway_load gateway --addr HOST:PORT [--clients 64] [--size 64] [--duration 5] [--rate R]
//! gateway_load direct --upstream HOST:PORT [--upstream …] [--clients 64] [--size 64] [--duration 5] [--rate R]
//! gateway_load idle --addr HOST:PORT [--clients 10000] [--hold 10]
//! ```
//!
//! Every client keeps one message outstanding: it sends `size` bytes and waits for all of them to
//! come back (the upstreams run `busway-upstream --mode echo`). Without `--rate` clients send as
//! fast as they can (peak); with it each client sends on a fixed schedule so the total is R
//! messages per second. One JSON line is printed: messages/s and round-trip percentiles.
//!
//! `idle` opens its connections (256 at a time), prints `{"opened":N}` and holds them for
//! `--hold` seconds, or until its stdin reaches end of file if stdin is a pipe: a benchmark that
//! dies then does not leave thousands of connections open behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use busway_grpc::pb::upstream_peer_service_client::UpstreamPeerServiceClient;
use busway_grpc::pb::{output_stream_request::Target, InputStreamRequest};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
struct Args {
    mode: String,
    addr: String,
    upstreams: Vec<String>,
    clients: usize,
    size: usize,
    duration: Duration,
    rate: Option<f64>,
    hold: Duration,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: gateway_load gateway|direct|idle [options]")?;
    let mut a = Args {
        mode,
        addr: String::new(),
        upstreams: Vec::new(),
        clients: 64,
        size: 64,
        duration: Duration::from_secs(5),
        rate: None,
        hold: Duration::from_secs(10),
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--addr" => a.addr = v,
            "--upstream" => a.upstreams.push(v),
            "--clients" => a.clients = num(&v)? as usize,
            "--size" => a.size = num(&v)? as usize,
            "--duration" => a.duration = Duration::from_secs_f64(num(&v)?),
            "--rate" => a.rate = Some(num(&v)?),
            "--hold" => a.hold = Duration::from_secs_f64(num(&v)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gateway_load: {e}");
            std::process::exit(2);
        }
    };
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway_load: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        match a.mode.as_str() {
            "gateway" => report(&a, gateway(&a).await),
            "direct" => report(&a, direct(&a).await),
            "idle" => idle(&a).await,
            other => {
                eprintln!("gateway_load: unknown mode {other}");
                std::process::exit(2);
            }
        }
    });
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// When a client sends its next message: as soon as it can (peak) or on its schedule.
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(a: &Args, i: usize) -> Pacer {
        let interval = a
            .rate
            .map(|r| Duration::from_secs_f64(a.clients as f64 / r.max(1.0)));
        // Spread the clients' schedules over one interval.
        let offset = interval.map_or(Duration::ZERO, |d| d * i as u32 / a.clients as u32);
        Pacer {
            interval,
            next: Instant::now() + offset,
        }
    }

    async fn wait(&mut self) {
        if let Some(d) = self.interval {
            tokio::time::sleep_until(self.next.into()).await;
            self.next += d;
        }
    }
}

/// One client's way of sending a message and waiting for its echo.
trait RoundTrip {
    /// False on any failure (the client stops).
    async fn once(&mut self) -> bool;
}

/// Runs one client until the end of the test, measuring every round trip.
async fn drive(a: &Args, i: usize, end: Instant, mut client: impl RoundTrip) -> Tally {
    let mut t = Tally::default();
    let mut pace = Pacer::new(a, i);
    while Instant::now() < end {
        pace.wait().await;
        let t0 = Instant::now();
        if !client.once().await {
            t.errors += 1;
            break;
        }
        t.latencies_us.push(t0.elapsed().as_micros() as u32);
    }
    t
}

/// Waits for every client's tally.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
    start: Instant,
) -> (Vec<Tally>, Duration) {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_default());
    }
    (out, start.elapsed())
}

/// A raw TCP client of the gateway.
struct TcpClient {
    s: tokio::net::TcpStream,
    msg: Vec<u8>,
    buf: Vec<u8>,
}

impl RoundTrip for TcpClient {
    async fn once(&mut self) -> bool {
        self.s.write_all(&self.msg).await.is_ok()
            && tokio::time::timeout(Duration::from_secs(5), self.s.read_exact(&mut self.buf))
                .await
                .is_ok_and(|r| r.is_ok())
    }
}

async fn gateway(a: &Args) -> (Vec<Tally>, Duration) {
    let mut tasks = Vec::new();
    let start = Instant::now();
    let end = start + a.duration;
    for i in 0..a.clients {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(s) = tokio::net::TcpStream::connect(&a.addr).await else {
                return Tally {
                    errors: 1,
                    ..Tally::default()
                };
            };
            let _ = s.set_nodelay(true);
            let client = TcpClient {
                s,
                msg: vec![b'm'; a.size],
                buf: vec![0u8; a.size],
            };
            drive(&a, i, end, client).await
        }));
    }
    gather(tasks, start).await
}

/// A logical client of a shared bidirectional call, as the gateway's downstreams are.
struct DirectClient {
    tx: mpsc::Sender<InputStreamRequest>,
    replies: mpsc::Receiver<Bytes>,
    uuid: String,
    payload: Bytes,
}

impl RoundTrip for DirectClient {
    async fn once(&mut self) -> bool {
        let m = InputStreamRequest {
            time: busway_grpc::time::now(),
            client_uuid: self.uuid.clone(),
            payload: self.payload.clone(),
            event: 0,
        };
        self.tx.send(m).await.is_ok()
            && tokio::time::timeout(Duration::from_secs(5), self.replies.recv())
                .await
                .is_ok_and(|r| r.is_some())
    }
}

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<Bytes>>>>;

/// One bidirectional call to upstream `u`, with the task that hands each reply to the client
/// whose uuid it carries.
async fn open_call(u: &str) -> Result<(mpsc::Sender<InputStreamRequest>, Waiters), String> {
    // The same HTTP/2 settings as the gateway's own links.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{u}"))
        .map_err(|e| format!("upstream address {u}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .initial_stream_window_size(Some(1 << 20))
        .initial_connection_window_size(Some(4 << 20))
        .connect()
        .await
        .map_err(|e| format!("connect {u}: {e}"))?;
    let mut client = UpstreamPeerServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<InputStreamRequest>(1024);
    let stream = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut replies = tokio::time::timeout(
        Duration::from_secs(5),
        client.bidirectional_streaming(stream),
    )
    .await
    .map_err(|_| format!("{u}: bidirectionalStreaming timed out"))?
    .map_err(|e| format!("{u}: bidirectionalStreaming: {e}"))?
    .into_inner();
    let waiters: Waiters = Arc::default();
    let w = waiters.clone();
    tokio::spawn(async move {
        while let Ok(Some(m)) = replies.message().await {
            if let Some(Target::ClientUuid(u)) = m.target {
                let tx = w.lock().ok().and_then(|w| w.get(&u).cloned());
                if let Some(tx) = tx {
                    let _ = tx.send(m.payload).await;
                }
            }
        }
    });
    Ok((tx, waiters))
}

async fn direct(a: &Args) -> (Vec<Tally>, Duration) {
    // One bidirectional call per upstream, shared by the clients assigned to it, as the gateway
    // does. An upstream that cannot be reached costs each of its clients one error.
    let mut calls = Vec::new();
    for u in &a.upstreams {
        let call = open_call(u).await;
        if let Err(e) = &call {
            eprintln!("gateway_load: {e}");
        }
        calls.push(call.ok());
    }
    if calls.is_empty() {
        eprintln!("gateway_load: direct needs at least one --upstream");
    }
    let start = Instant::now();
    let end = start + a.duration;
    let mut tasks = Vec::new();
    for i in 0..a.clients {
        let call = calls.get(i % calls.len().max(1)).cloned().flatten();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let Some((tx, waiters)) = call else {
                return Tally {
                    errors: 1,
                    ..Tally::default()
                };
            };
            let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
            let (rtx, replies) = mpsc::channel(4);
            if let Ok(mut w) = waiters.lock() {
                w.insert(uuid.clone(), rtx);
            }
            let client = DirectClient {
                tx,
                replies,
                uuid,
                payload: Bytes::from(vec![b'm'; a.size]),
            };
            drive(&a, i, end, client).await
        }));
    }
    gather(tasks, start).await
}

fn report(a: &Args, (tallies, took): (Vec<Tally>, Duration)) {
    let mut all: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    all.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let pct = |p: f64| {
        if all.is_empty() {
            0
        } else {
            all[((all.len() - 1) as f64 * p).round() as usize]
        }
    };
    println!(
        "{{\"mode\":\"{}\",\"clients\":{},\"size\":{},\"rate\":{},\"messages\":{},\"duration_s\":{:.3},\"msgs_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"errors\":{}}}",
        a.mode,
        a.clients,
        a.size,
        a.rate.unwrap_or(0.0),
        all.len(),
        took.as_secs_f64(),
        all.len() as f64 / took.as_secs_f64().max(1e-9),
        pct(0.50),
        pct(0.99),
        errors
    );
}

async fn idle(a: &Args) {
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let addr = a.addr.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(&addr).await;
            drop(permit);
            s.ok()
        }));
    }
    let mut held = Vec::with_capacity(a.clients);
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            held.push(s);
        }
    }
    println!("{{\"opened\":{}}}", held.len());
    tokio::select! {
        _ = tokio::time::sleep(a.hold) => {}
        _ = stdin_closed() => {}
    }
    drop(held);
}

/// Resolves when stdin, if it is a pipe or a socket, reaches end of file. A terminal or
/// `/dev/null` never ends the hold: a run from a shell, or with `< /dev/null`, holds for `--hold`.
async fn stdin_closed() {
    use std::os::unix::fs::FileTypeExt;
    let piped = std::fs::metadata("/dev/stdin")
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket());
    if !piped {
        return std::future::pending().await;
    }
    // A plain thread, not tokio's stdin: a read still blocked at exit would hold up the
    // runtime's shutdown, and the process exits without waiting for this thread.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
}
