//! The long-running commands (`run`, `controller`, `segment`, `demo`) and `check`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use busway_config::{Address, Role};
use busway_node::{Listening, Node};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::RoleArg;
use crate::notify::Notify;

/// Where a node's configuration comes from; the node keeps it so that SIGHUP and
/// `POST /v1/reload` read it again.
pub use busway_config::Source;

/// A proxy holds two descriptors per session: raise the soft limit to the hard one, as HAProxy
/// does, so that tens of thousands of sessions do not fail on a default limit of 1024.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    raise_fd_limit();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("busway: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    }
}

/// Prints the start-up lines other programs wait for, and flushes them.
fn announce(lines: &[Listening]) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "listening {} {}", l.service, l.url);
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

enum Sig {
    Stop,
    Reload,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.term.recv() => Sig::Stop,
            _ = self.int.recv() => Sig::Stop,
            _ = self.hup.recv() => Sig::Reload,
        }
    }
}

/// Runs a node (or the demo's nodes): starts it inside a runtime, prints the start-up lines and
/// tells the service manager, then hands every signal to `on_signal` until it says to stop
/// (returns true).
fn serve<T>(
    start: impl std::future::Future<Output = Result<(T, Vec<Listening>), busway_node::StartError>>,
    after_announce: impl FnOnce(&[Listening]),
    mut on_signal: impl AsyncFnMut(&T, Sig, &Notify) -> bool,
) -> ExitCode {
    let notify = Notify::from_env();
    let rt = runtime();
    let code = rt.block_on(async {
        let mut signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("busway: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let (state, lines) = match start.await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("busway: {e}");
                return ExitCode::from(e.exit_code());
            }
        };
        announce(&lines);
        // After the lines, so that whoever waits on either sees every listener bound.
        notify.ready(&format!("ready: {} listeners", lines.len()));
        after_announce(&lines);
        loop {
            let sig = signals.next().await;
            if on_signal(&state, sig, &notify).await {
                return ExitCode::SUCCESS;
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// `run`, `controller`, `segment`.
pub fn run_file(src: Source) -> ExitCode {
    let cfg = match src.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("busway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let start = async move {
        let (node, lines) = Node::start(cfg).await?;
        node.set_source(src);
        Ok::<_, busway_node::StartError>((node, lines))
    };
    serve(
        start,
        |_| {},
        async |node, sig, notify| match sig {
            Sig::Reload => {
                tracing::info!("SIGHUP: reloading the configuration");
                notify.reloading();
                // The outcome is logged and counted by the node; systemd gets it as a status.
                notify.ready(&match node.reload_from_source().await {
                    Ok(()) => "ready: configuration reloaded".to_string(),
                    Err(e) => format!(
                        "ready: reload rejected, the previous configuration keeps running: {e}"
                    ),
                });
                false
            }
            Sig::Stop => {
                tracing::info!("stopping");
                let grace = node.config().node.shutdown_grace;
                notify.stopping(&format!(
                    "draining: open sessions have up to {grace:?} to finish"
                ));
                node.shutdown(grace).await;
                true
            }
        },
    )
}

/// `check`: validates, prints the normalised TOML, exits 0 or 2.
pub fn check(path: &Path, role: Option<RoleArg>) -> ExitCode {
    let is_ini = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ini"));
    let loaded = match (role, is_ini) {
        (Some(RoleArg::Controller), _) => busway_config::load_ini(path, Role::Controller),
        (Some(RoleArg::Segment), _) => busway_config::load_ini(path, Role::Segment),
        (None, true) => {
            eprintln!(
                "busway: {}: an INI file needs --role controller or --role segment",
                path.display()
            );
            return ExitCode::from(2);
        }
        (None, false) => busway_config::load_toml(path),
    };
    match loaded {
        Ok(cfg) => {
            print!("{}", busway_config::render_toml(&cfg));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("busway: configuration error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `demo`: the embedded default.
pub fn demo(listen: &str) -> ExitCode {
    let listen: Address = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("busway: --listen {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let tell = |lines: &[Listening]| {
        if let Some(l) = lines.first() {
            let hostport = l.url.trim_start_matches("tcp://").replace(':', " ");
            println!("try it: nc {hostport}   (every line you type comes back through ingress -> bus -> egress -> echo)");
            if let Some(a) = lines.iter().find(|l| l.service == "admin") {
                println!("watch it: busway status --admin {}", a.url);
            }
        }
    };
    serve(
        busway_node::demo::start(listen),
        tell,
        async |nodes: &Vec<std::sync::Arc<Node>>, sig, notify: &Notify| match sig {
            Sig::Reload => false,
            Sig::Stop => {
                notify.stopping("draining");
                for n in nodes {
                    n.shutdown(Duration::from_secs(2)).await;
                }
                true
            }
        },
    )
}
