//! `scale`: many simulated nodes registering in one etcd and churning, while real watchers time
//! every change, for `bench/discovery-scale` (docs/SCALING.md).
//!
//! ```text
//! cargo run --release -p busway-discovery --example scale -- \
//!     --endpoint http://127.0.0.1:2379 --etcd-pid 4242 --nodes 1000 --churn 10 --secs 180
//! ```
//!
//! Each simulated node does what a node's discovery does (see `node`): its own lease, its
//! keepalives every TTL/3, its record written under the lease, and on leaving the record
//! deleted and the lease revoked. The watchers are busway-discovery itself (`Discovery`, with
//! its snapshot-then-watch), one connection each. All run in this one process, so one clock
//! times a change from just before its write to its arrival at each watcher.
//!
//! Phases: the watchers start on an empty prefix; every node joins (the ramp, at most
//! `--parallel` joins in flight); one more `Discovery` starts to time a snapshot of the full
//! registry; then for `--secs` nodes leave at random (`--churn` % of them a minute, a Poisson
//! process) and each comes back after `--away-ms` under a new lease. etcd's CPU (from /proc)
//! and its own counters (from its /metrics) are read over the churn alone. Everything is bounded: the ramp at 120 s, the churn at `--secs`
//! and `--max-cycles`, the drain after it at `--away-ms` + 15 s. One JSON line on stdout.

// The crate's own etcd client, compiled into the example as it is (the crate keeps it
// private): the simulated nodes send exactly what a node sends. It has calls this one
// does not make.
#[allow(dead_code, unused_imports)]
#[path = "../../src/etcd/mod.rs"]
mod etcd;
mod events;
mod load;
mod metrics;
mod node;
mod procstat;
mod report;
mod run;
mod watcher;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Simulated nodes churning in one etcd, timed by real watchers")]
pub struct Args {
    /// The etcd to load, `http://HOST:PORT`.
    #[arg(long)]
    pub endpoint: String,
    /// etcd's pid, to read its CPU and memory from /proc (none: not reported).
    #[arg(long)]
    pub etcd_pid: Option<u32>,
    /// Clock ticks a second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Watchers, each a `Discovery` of its own.
    #[arg(long, default_value_t = 10)]
    pub watchers: usize,
    /// Connections the simulated nodes share (0: each node its own, opened when it joins and
    /// dropped when it leaves, as a node's process does).
    #[arg(long, default_value_t = 0)]
    pub conns: usize,
    /// Lease TTL in seconds.
    #[arg(long, default_value_t = 10)]
    pub ttl: u64,
    /// Nodes leaving (and coming back) a minute, in percent of `--nodes`.
    #[arg(long, default_value_t = 10.0)]
    pub churn: f64,
    /// How long the churn lasts, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub secs: f64,
    /// How long a node that left stays away before it joins again.
    #[arg(long, default_value_t = 2000)]
    pub away_ms: u64,
    /// The most leave-and-join cycles of the churn.
    #[arg(long, default_value_t = 100_000)]
    pub max_cycles: u64,
    /// Joins in flight at once during the ramp.
    #[arg(long, default_value_t = 50)]
    pub parallel: usize,
    /// The key prefix.
    #[arg(long, default_value = "/scale")]
    pub prefix: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.nodes == 0 || args.watchers == 0 || !(args.secs > 0.0 && args.secs <= 3600.0) {
        eprintln!("scale: --nodes and --watchers must be > 0, --secs in (0, 3600]");
        return std::process::ExitCode::from(2);
    }
    if !(args.churn > 0.0 && args.churn <= 1000.0) || args.ttl == 0 {
        eprintln!("scale: --churn must be in (0, 1000], --ttl at least 1");
        return std::process::ExitCode::from(2);
    }
    // Each node's connection and each watcher's is a descriptor here.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run::run(&args)) {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
