//! `flood`: new bus connections at a fixed rate from a peer that does not hold the secret, for
//! `bench/flood` (docs/BENCHMARKS.md, "Handshake flood").
//!
//! Each connection runs the initiator's side of a real handshake (docs/PROTOCOL.md, 3.1) with
//! `busway_proto::Connection` and a wrong secret: its Hello, the acceptor's Challenge, an Auth
//! sealed with the wrong secret — so the acceptor does all the work a full handshake costs it up
//! to the proof check, which then fails — and then the acceptor's GoAway and close. The tool
//! counts how each connection ended and prints one JSON line on stdout.
//!
//! ```text
//! cargo run --release -p busway --example flood -- --addr 127.0.0.1:18400 \
//!     --rate 5000 --secs 10 --secret wrong-secret-0123456789
//! ```
//!
//! It is an open-loop generator: connections start on a schedule of `rate` per second, whether
//! earlier ones finished or not, so a slow listener shows up as connections piling up (capped
//! by `--max-open`, then counted `capped` instead of started) rather than as a lower offered
//! rate. Everything is bounded: at most `count` connections, for at most `secs`, each for at
//! most `--timeout-ms`, and then at most `--timeout-ms` more for the last ones to finish.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_proto::{Config, Connection, Side};
use bytes::BytesMut;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
#[command(about = "New bus connections at a fixed rate, each failing its handshake's proof")]
struct Args {
    /// The bus listener to flood, HOST:PORT.
    #[arg(long)]
    addr: SocketAddr,
    /// New connections per second.
    #[arg(long, default_value_t = 5000)]
    rate: u32,
    /// How long to keep starting connections.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Connections in all (default: rate × secs).
    #[arg(long)]
    count: Option<u64>,
    /// The secret to prove: one the listener does not hold. At least 16 bytes, as busway
    /// requires of a real secret, so the Auth is what a misconfigured node would send.
    #[arg(long)]
    secret: String,
    /// Connections open at once, at most; a connection due while this many are open is not
    /// started (counted `capped`). Lowered to fit RLIMIT_NOFILE.
    #[arg(long, default_value_t = 2000)]
    max_open: usize,
    /// How long one connection may take, connect to close.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Close with a reset (SO_LINGER 0) instead of a FIN, so neither end keeps the connection
    /// in TIME_WAIT.
    #[arg(long)]
    rst: bool,
}

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// connect() failed (refused, out of ports or descriptors).
    ConnectError,
    /// A read or write failed after the connect (a reset, for instance).
    IoError,
    /// The listener closed before it sent a Challenge (e.g. `max_transports`).
    ClosedBeforeChallenge,
    /// The listener closed after our Auth without a GoAway.
    ClosedAfterAuth,
    /// The listener's GoAway named this reason (`auth` is the expected one).
    Refused(&'static str),
    /// The listener accepted the wrong secret: never expected.
    Established,
    /// Nothing conclusive within `--timeout-ms`.
    Timeout,
}

impl End {
    fn label(self) -> String {
        match self {
            End::ConnectError => "connect_error".into(),
            End::IoError => "io_error".into(),
            End::ClosedBeforeChallenge => "closed_before_challenge".into(),
            End::ClosedAfterAuth => "closed_after_auth".into(),
            End::Refused(r) => format!("refused_{r}"),
            End::Established => "established".into(),
            End::Timeout => "timeout".into(),
        }
    }
}

struct Outcome {
    end: End,
    /// From the connect's start to the Challenge, when one came.
    challenge: Option<Duration>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.secret.len() < 16 {
        eprintln!("flood: --secret must be at least 16 bytes");
        return std::process::ExitCode::from(2);
    }
    if args.rate == 0 || !(args.secs > 0.0 && args.secs <= 3600.0) {
        eprintln!("flood: --rate must be > 0 and --secs in (0, 3600]");
        return std::process::ExitCode::from(2);
    }
    // One thread: the generator is pinned to one core by the bench, and one thread keeps its
    // own cost easy to read.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flood: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(run(&args));
    println!("{report}");
    std::process::ExitCode::SUCCESS
}

/// Descriptors this process may hold, raised to the hard limit when allowed.
fn descriptors() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

async fn run(args: &Args) -> serde_json::Value {
    let fds = descriptors();
    // Headroom for the runtime's own descriptors and stdio.
    let max_open = args.max_open.min(fds.saturating_sub(64) as usize).max(1);
    let total = args
        .count
        .unwrap_or((f64::from(args.rate) * args.secs).ceil() as u64);
    let cfg = Arc::new(Config {
        node: "flood".into(),
        secret: Some(args.secret.as_bytes().to_vec()),
        handshake_timeout: Duration::from_millis(args.timeout_ms),
        ..Config::default()
    });
    let timeout = Duration::from_millis(args.timeout_ms);
    let open = Arc::new(Semaphore::new(max_open));
    let mut set: JoinSet<Outcome> = JoinSet::new();
    let mut tally = Tally::default();
    let (mut started, mut capped) = (0u64, 0u64);
    let mut peak_open = 0usize;

    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.secs);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while started + capped < total && Instant::now() < until {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * f64::from(args.rate)) as u64).min(total);
        while started + capped < due {
            match open.clone().try_acquire_owned() {
                Ok(permit) => {
                    let cfg = cfg.clone();
                    let (addr, rst) = (args.addr, args.rst);
                    set.spawn(async move {
                        let o = one(addr, &cfg, timeout, rst).await;
                        drop(permit);
                        o
                    });
                    started += 1;
                }
                Err(_) => capped += 1,
            }
        }
        peak_open = peak_open.max(max_open - open.available_permits());
        while let Some(r) = set.try_join_next() {
            tally.add(r);
        }
    }
    let sending = start.elapsed();
    // The last connections get their own timeout to finish; none outlives it.
    let drain_until = tokio::time::Instant::now() + timeout + Duration::from_millis(500);
    while let Ok(Some(r)) = tokio::time::timeout_at(drain_until, set.join_next()).await {
        tally.add(r);
    }
    let abandoned = set.len() as u64;
    set.abort_all();

    let secs = sending.as_secs_f64().max(1e-9);
    let connected = started - tally.count(End::ConnectError) - abandoned;
    let mut ends = serde_json::Map::new();
    for (end, n) in &tally.ends {
        ends.insert(end.label(), (*n).into());
    }
    let mut lat = tally.challenge_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| -> Option<f64> {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).map(|us| *us as f64 / 1000.0)
    };
    serde_json::json!({
        "addr": args.addr.to_string(),
        "rate": args.rate,
        "secs": round(secs, 3),
        "max_open": max_open,
        "peak_open": peak_open,
        "started": started,
        "capped": capped,
        "connected": connected,
        "challenged": lat.len(),
        "abandoned": abandoned,
        "ends": ends,
        "started_per_s": round(started as f64 / secs, 1),
        "conn_per_s": round(connected as f64 / secs, 1),
        "challenged_per_s": round(lat.len() as f64 / secs, 1),
        "challenge_p50_ms": pct(0.5).map(|v| round(v, 3)),
        "challenge_p99_ms": pct(0.99).map(|v| round(v, 3)),
        "challenge_max_ms": lat.last().map(|us| round(*us as f64 / 1000.0, 3)),
    })
}

fn round(v: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (v * m).round() / m
}

#[derive(Default)]
struct Tally {
    ends: BTreeMap<End, u64>,
    challenge_us: Vec<u32>,
}

impl Tally {
    fn add(&mut self, r: Result<Outcome, tokio::task::JoinError>) {
        let Ok(o) = r else {
            *self.ends.entry(End::IoError).or_default() += 1;
            return;
        };
        *self.ends.entry(o.end).or_default() += 1;
        if let Some(d) = o.challenge {
            self.challenge_us
                .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        }
    }

    fn count(&self, end: End) -> u64 {
        self.ends.get(&end).copied().unwrap_or(0)
    }
}

/// One connection: Hello, wait for the Challenge, Auth with the wrong secret, wait for the
/// acceptor to give up, close.
async fn one(addr: SocketAddr, cfg: &Config, timeout: Duration, rst: bool) -> Outcome {
    let t0 = Instant::now();
    let mut challenge = None;
    let end =
        match tokio::time::timeout(timeout, handshake(addr, cfg, rst, t0, &mut challenge)).await {
            Ok(end) => end,
            Err(_) => End::Timeout,
        };
    Outcome { end, challenge }
}

async fn handshake(
    addr: SocketAddr,
    cfg: &Config,
    rst: bool,
    t0: Instant,
    challenge: &mut Option<Duration>,
) -> End {
    let Ok(mut sock) = TcpStream::connect(addr).await else {
        return End::ConnectError;
    };
    if rst {
        // Dropped with a reset whichever way it ends below.
        let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    }
    let _ = sock.set_nodelay(true);
    let mut conn = Connection::new(Side::Initiator, cfg.clone(), rand::random(), Instant::now());
    let mut out = BytesMut::new();
    let mut rbuf = BytesMut::with_capacity(4096);
    loop {
        if conn.wants_transmit() {
            out.clear();
            conn.transmit(&mut out);
            if sock.write_all(&out).await.is_err() {
                return End::IoError;
            }
        }
        match sock.read_buf(&mut rbuf).await {
            Ok(0) if challenge.is_none() => return End::ClosedBeforeChallenge,
            Ok(0) => return End::ClosedAfterAuth,
            Ok(_) => {}
            Err(_) => return End::IoError,
        }
        let r = conn.handle_input(&mut rbuf, Instant::now());
        // The Challenge is the only frame that makes an initiator answer (with its Auth) before
        // it is established.
        if challenge.is_none() && conn.wants_transmit() {
            *challenge = Some(t0.elapsed());
        }
        match r {
            Err(e) => return End::Refused(e.reason()),
            Ok(()) if conn.is_established() => return End::Established,
            Ok(()) => {}
        }
    }
}
