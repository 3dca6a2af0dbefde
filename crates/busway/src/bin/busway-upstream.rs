//! `busway-upstream`: the reference gRPC upstream (see `busway_grpc::reference`), for trying the
//! gateway, for the tests and for the benchmarks.
//!
//! Once bound it prints `listening upstream grpc://IP:PORT` and `ready` on stdout, like busway.
//! SIGUSR1 toggles answering `live`, SIGUSR2 toggles `ready`.

use std::io::Write;
use std::process::ExitCode;

use busway_grpc::reference::{Mode, Options, Reference};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "busway-upstream",
    version,
    about = "A reference upstream for busway's gRPC gateway"
)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: std::net::SocketAddr,
    /// `salut` answers like the original Go test server; `echo` sends payloads back; `sink`
    /// reads and never answers.
    #[arg(long, default_value = "salut", value_parser = ["salut", "echo", "sink"])]
    mode: String,
    /// Prefix of every echo.
    #[arg(long, default_value = "")]
    tag: String,
    /// Answer `ready = false` (SIGUSR2 toggles).
    #[arg(long)]
    not_ready: bool,
    /// Do not answer `live` (SIGUSR1 toggles).
    #[arg(long)]
    silent_live: bool,
    /// Exit (status 3) after this many data messages, as a crash would.
    #[arg(long)]
    crash_after: Option<u64>,
    /// Print a line per data message.
    #[arg(long)]
    verbose: bool,
    /// Wait this many milliseconds after each data message before reading the next (a slow
    /// upstream).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Serve TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => match (std::fs::read(c), std::fs::read(k)) {
            (Ok(c), Ok(k)) => Some((c, k)),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("busway-upstream: cannot read the TLS files: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let opts = Options {
        mode: match a.mode.as_str() {
            "echo" => Mode::Echo,
            "sink" => Mode::Sink,
            _ => Mode::Salut,
        },
        tag: a.tag,
        not_ready: a.not_ready,
        silent_live: a.silent_live,
        crash_after: a.crash_after,
        verbose: a.verbose,
        delay: std::time::Duration::from_millis(a.delay_ms),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("busway-upstream: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(a.listen, opts, tls))
}

async fn run(
    addr: std::net::SocketAddr,
    opts: Options,
    tls: Option<(Vec<u8>, Vec<u8>)>,
) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("busway-upstream: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let bound = listener.local_addr().map_or(addr, |a| a);
    let server = Reference::new(opts);
    let controls = server.controls.clone();
    {
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "grpcs" } else { "grpc" };
        let _ = writeln!(out, "listening upstream {scheme}://{bound}\nready");
        let _ = out.flush();
    }
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut usr1), Ok(mut usr2), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("busway-upstream: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let stop = async move {
        loop {
            tokio::select! {
                _ = usr1.recv() => eprintln!("busway-upstream: answering live: {}", controls.toggle_live()),
                _ = usr2.recv() => eprintln!("busway-upstream: ready: {}", controls.toggle_ready()),
                _ = term.recv() => return,
                _ = int.recv() => return,
            }
        }
    };
    match server.serve(listener, tls, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("busway-upstream: {e}");
            ExitCode::from(1)
        }
    }
}
