//! Starting and stopping busway processes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "busway-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running busway process.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    /// `listening` lines: service name -> URLs in order.
    pub listening: BTreeMap<String, Vec<String>>,
    stderr: Arc<Mutex<String>>,
    /// Every stdout line after `ready`.
    stdout: Arc<Mutex<Vec<String>>>,
}

/// The path of the binary under test (set by cargo for the `busway` package's tests).
pub fn busway_bin() -> PathBuf {
    sibling_bin("BUSWAY_BIN", "busway")
}

/// The reference gRPC upstream, built beside `busway`.
pub fn upstream_bin() -> PathBuf {
    sibling_bin("BUSWAY_UPSTREAM_BIN", "busway-upstream")
}

/// `$env` if set, else `name` in the test binary's target directory.
fn sibling_bin(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target dir")
}

impl Proc {
    /// Starts `busway ARGS` and waits (up to 15 s) for `ready`. Panics with its stderr if it
    /// exits or never gets ready.
    pub fn start(args: &[&str]) -> Proc {
        Self::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::start_bin(&busway_bin(), args, env)
    }

    /// Starts the reference upstream on a free loopback port.
    pub fn upstream(args: &[&str]) -> Proc {
        Self::upstream_at("127.0.0.1:0", args)
    }

    /// Starts the reference upstream on `addr` (to restart one on the port it had).
    pub fn upstream_at(addr: &str, args: &[&str]) -> Proc {
        let mut all = vec!["--listen", addr];
        all.extend_from_slice(args);
        Self::start_bin(&upstream_bin(), &all, &[])
    }

    /// Starts any program that prints `listening NAME URL` lines and then `ready`.
    pub fn start_bin(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if std::env::var("RUST_LOG").is_err() && !env.iter().any(|(k, _)| *k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if std::env::var("BUSWAY_TEST_ECHO_LOGS").is_ok() {
                    eprint!("[busway] {line}");
                }
                log2.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = BufReader::new(stdout);
            for line in r.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Proc {
            child: Some(child),
            listening: BTreeMap::new(),
            stderr: log,
            stdout: Arc::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    let mut parts = line.splitn(3, ' ');
                    if let (Some("listening"), Some(s), Some(u)) =
                        (parts.next(), parts.next(), parts.next())
                    {
                        p.listening
                            .entry(s.to_string())
                            .or_default()
                            .push(u.to_string());
                    }
                }
                Err(_) => {
                    let status = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "{} {args:?} did not become ready (exit: {status:?}); stderr:\n{}",
                        bin.display(),
                        p.stderr()
                    );
                }
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        let lines = p.stdout.clone();
        std::thread::spawn(move || {
            while let Ok(l) = rx.recv() {
                lines.lock().unwrap().push(l);
            }
        });
        p
    }

    /// The lines printed on stdout after `ready`, so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a stdout line that satisfies `pred`.
    pub fn wait_stdout(&self, pred: impl Fn(&str) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.stdout.lock().unwrap().iter().any(|l| pred(l)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `busway run -c FILE` with `toml` written into `dir`.
    pub fn run_toml(dir: &TempDir, name: &str, toml: &str) -> Proc {
        Proc::run_toml_env(dir, name, toml, &[])
    }

    /// [`Proc::run_toml`] with extra environment, such as `RUST_LOG=trace` for a test that
    /// reads every log line a node can write.
    pub fn run_toml_env(dir: &TempDir, name: &str, toml: &str, env: &[(&str, &str)]) -> Proc {
        let path = dir.write(name, toml);
        Proc::start_env(&["run", "-c", path.to_str().expect("utf-8 path")], env)
    }

    /// The first URL printed for `service`.
    pub fn url(&self, service: &str) -> String {
        self.listening
            .get(service)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| panic!("no listening line for {service}: {:?}", self.listening))
    }

    /// `HOST:PORT` of the first TCP URL printed for `service`.
    pub fn addr(&self, service: &str) -> String {
        crate::hostport(&self.url(service))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `limit` for `needle` in stderr; true once it is there. The thread that reads
    /// stderr runs a little behind the process (and behind its counters and its exit), so a
    /// test asserting a log line waits for it rather than reading [`Proc::stderr`] once.
    pub fn wait_stderr(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.stderr.lock().unwrap().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        send_signal(self.pid(), sig);
    }

    /// Waits up to `limit` for exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How many descriptors the process has open, from /proc (0 once it is gone).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

fn send_signal(pid: i32, sig: i32) {
    // `kill(1)` keeps this crate free of `unsafe`.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `busway ARGS` to completion (for `check` and usage errors): (exit code, stdout, stderr).
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(busway_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busway");
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), out, err)
}
