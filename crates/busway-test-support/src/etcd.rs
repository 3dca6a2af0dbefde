//! A real etcd for tests: Debian's etcd-server on free loopback ports, its data in a temporary
//! directory, each member killed by pid when the [`Etcd`] is dropped; and etcdctl (Debian's
//! etcd-client) to look at what was written and to write what a node would not.
//!
//! One member or a cluster of several; a member can be stopped and started again on the same
//! ports and data (a restart), or on an empty data directory (a new single-member cluster).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proc::TempDir;

/// One member's fixed facts and, while it runs, its process.
#[derive(Debug)]
struct Member {
    name: String,
    client: u16,
    peer: u16,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running etcd, one member or several.
#[derive(Debug)]
pub struct Etcd {
    members: Vec<Member>,
    token: String,
}

fn bin(name: &str) -> PathBuf {
    let p = Path::new("/usr/bin").join(name);
    assert!(
        p.exists(),
        "{name} is needed for the discovery tests: apt-get install etcd-server etcd-client"
    );
    p
}

fn free_port() -> u16 {
    crate::backends::closed_port()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

impl Etcd {
    /// One member, healthy on return. Panics, naming the log, if it never gets healthy.
    pub fn start(dir: &TempDir) -> Etcd {
        Self::cluster(dir, 1)
    }

    /// `n` members of one cluster, all healthy on return. Ports are picked free and released
    /// before etcd binds them, so a start that loses that race is tried again on new ones.
    pub fn cluster(dir: &TempDir, n: usize) -> Etcd {
        for attempt in 0..5 {
            let token = format!("busway-test-{}-{attempt}", std::process::id());
            let members = (0..n)
                .map(|i| {
                    let name = format!("m{i}-{attempt}");
                    Member {
                        client: free_port(),
                        peer: free_port(),
                        data: dir.path(&format!("{name}.etcd")),
                        log: dir.path(&format!("{name}.log")),
                        name,
                        child: None,
                    }
                })
                .collect();
            let mut e = Etcd { members, token };
            for i in 0..n {
                e.spawn(i);
            }
            if e.wait_healthy(Duration::from_secs(20)) {
                return e;
            }
            let exited = e.members.iter_mut().any(|m| {
                m.child
                    .as_mut()
                    .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            });
            if !exited {
                panic!(
                    "etcd did not become healthy in 20 s; logs in {}",
                    dir.0.display()
                );
            }
            // A port was taken between picking and binding: drop these and try again.
        }
        panic!(
            "etcd did not start on free ports; logs in {}",
            dir.0.display()
        );
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let cluster = self.initial_cluster();
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log file");
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new(bin("etcd"))
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        m.child = Some(child);
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// The first member's client URL.
    pub fn endpoint(&self) -> String {
        self.endpoints().remove(0)
    }

    /// The pid of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Kills member `i` (SIGKILL) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its ports and its data: a restart.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Kills a single-member etcd, empties its data and starts it again on the same port: a
    /// new cluster where the old one was, without its records, leases or revisions.
    pub fn restart_empty(&mut self) {
        assert_eq!(self.members.len(), 1, "only for a single member");
        self.kill(0);
        let _ = std::fs::remove_dir_all(&self.members[0].data);
        self.token.push_str("-again");
        self.spawn(0);
    }

    /// The client port of member `i`.
    pub fn client_port(&self, i: usize) -> u16 {
        self.members[i].client
    }

    /// The client URLs of the members running now.
    fn running(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits up to `limit` until every running member answers `endpoint health`.
    pub fn wait_healthy(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let running = self.running();
        loop {
            let (ok, _, _) = self.etcdctl_at(&running, &["endpoint", "health"]);
            if ok {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl ARGS` against every member; its stdout. Panics with its stderr if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.etcdctl(args);
        assert!(ok, "etcdctl {args:?} failed: {err}");
        out
    }

    /// `etcdctl ARGS` against every member: (success, stdout, stderr).
    pub fn etcdctl(&self, args: &[&str]) -> (bool, String, String) {
        self.etcdctl_at(&self.endpoints().join(","), args)
    }

    /// `etcdctl ARGS` against the running members only (the survivors, after a kill):
    /// (success, stdout, stderr).
    pub fn etcdctl_running(&self, args: &[&str]) -> (bool, String, String) {
        self.etcdctl_at(&self.running(), args)
    }

    fn etcdctl_at(&self, endpoints: &str, args: &[&str]) -> (bool, String, String) {
        etcdctl(Command::new(bin("etcdctl")), endpoints, args)
    }

    /// `etcdctl put -- KEY VALUE` (`--` so that a value starting with `-` is not a flag).
    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", "--", key, value]);
    }

    /// [`Etcd::put`] under `lease` (an id from [`Etcd::grant`]).
    pub fn put_leased(&self, key: &str, value: &str, lease: &str) {
        self.ctl(&["put", &format!("--lease={lease}"), "--", key, value]);
    }

    /// A lease of `ttl` seconds granted by etcdctl: its id in hex, as etcdctl takes it back.
    pub fn grant(&self, ttl: u64) -> String {
        let out = self.ctl(&["lease", "grant", &ttl.to_string()]);
        // "lease 694d7a3bd5b7e40f granted with TTL(5s)"
        out.split_whitespace()
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| panic!("unexpected lease grant output: {out}"))
    }

    /// etcd's current revision, from `endpoint status -w json`.
    pub fn revision(&self) -> i64 {
        let out = self.ctl(&["endpoint", "status", "-w", "json"]);
        let at = out.find("\"revision\":").expect("revision in status") + 11;
        out[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("revision number")
    }
}

/// `cmd` (etcdctl, or a command that runs it, such as `ip netns exec NS etcdctl`) with `ARGS`
/// against `endpoints`, with short timeouts: (success, stdout, stderr).
pub(crate) fn etcdctl(mut cmd: Command, endpoints: &str, args: &[&str]) -> (bool, String, String) {
    let out = cmd
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints])
        .args(["--dial-timeout", "1s", "--command-timeout", "3s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Decodes standard base64 (etcdctl's `-w json` keys and values). Panics on anything else:
/// it only reads etcdctl's output.
pub fn base64(s: &str) -> Vec<u8> {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {s:?}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= digit(c) << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_every_padding() {
        assert_eq!(super::base64("aGVsbG8="), b"hello");
        assert_eq!(super::base64("aGVsbG8hIQ=="), b"hello!!");
        assert_eq!(super::base64("aGk/"), b"hi?");
        assert_eq!(super::base64(""), b"");
    }
}
