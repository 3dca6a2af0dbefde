//! A real etcd inside a [`Lab`]'s gateway namespace, listening on 198.18.0.1, so members reach
//! it across the bridge as a LAN's etcd would be reached: for `[cluster] backend = "etcd"`.
//!
//! Its Raft timing is shortened (heartbeat 50 ms, election timeout 500 ms) so that etcd grants
//! a lease of 1 s: its shortest lease is 1.5 election timeouts, rounded up to a whole second,
//! which with the defaults (1 s) would turn `lease_ttl = "1s"` into 2 s.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{Lab, GATEWAY};
use crate::proc::TempDir;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// The running etcd, killed by pid when dropped.
#[derive(Debug)]
pub struct LabEtcd {
    child: Child,
    ns: String,
    data: PathBuf,
    log: PathBuf,
}

/// Why etcd cannot run here, or `None`.
pub fn unavailable() -> Option<String> {
    [ETCD, ETCDCTL]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("needs {p} (apt-get install etcd-server etcd-client)"))
}

impl LabEtcd {
    /// The client URL members are given.
    pub fn endpoint() -> String {
        format!("http://{GATEWAY}:2379")
    }

    /// Starts etcd in `lab`'s gateway namespace, its data and log in `dir`; healthy on return.
    pub fn start(lab: &Lab, dir: &TempDir) -> LabEtcd {
        let ns = lab.gateway();
        let data = dir.path("lab.etcd");
        let log = dir.path("etcd.log");
        let child = spawn(&ns, &data, &log);
        let e = LabEtcd {
            child,
            ns,
            data,
            log,
        };
        e.wait_healthy();
        e
    }

    /// Kills etcd (SIGKILL): etcd away.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on its data (after [`LabEtcd::kill`]); healthy on return.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.ns, &self.data, &self.log);
        self.wait_healthy();
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctl_ok(&["endpoint", "health"]).0 {
            assert!(
                Instant::now() < deadline,
                "etcd in the lab never got healthy; its log is {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl ARGS` from the gateway namespace: (success, stdout).
    pub fn ctl_ok(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, ETCDCTL]);
        let (ok, out, _) = crate::etcd::etcdctl(cmd, &LabEtcd::endpoint(), args);
        (ok, out)
    }

    /// The value at `key`, if any (`etcdctl get --print-value-only`).
    pub fn get(&self, key: &str) -> Option<String> {
        let (ok, out) = self.ctl_ok(&["get", "--print-value-only", key]);
        (ok && !out.trim().is_empty()).then(|| out.trim().to_string())
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (_, out) = self.ctl_ok(&["get", "--prefix", "--keys-only", prefix]);
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// `ip netns exec NS etcd …` on `data`, appending to `log`.
fn spawn(ns: &str, data: &Path, log: &Path) -> Child {
    let peer = format!("http://{GATEWAY}:2380");
    let client = LabEtcd::endpoint();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("etcd log");
    Command::new("ip")
        .args(["netns", "exec", ns, ETCD, "--name", "lab"])
        .arg("--data-dir")
        .arg(data)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("lab={peer}")])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .args(["--logger", "zap", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn etcd in the gateway namespace")
}

impl Drop for LabEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
