//! sd_notify: a node started with `$NOTIFY_SOCKET` (systemd's `Type=notify`) says `READY=1` once
//! its start-up lines are out, `RELOADING=1` then `READY=1` around a SIGHUP reload, and
//! `STOPPING=1` when SIGTERM starts the drain. The test plays the service manager: it binds the
//! datagram socket and starts the real binary.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use busway_test_support::proc::busway_bin;
use common::*;

/// The node under test; killed when dropped.
struct Node {
    child: Child,
    stdout: std::path::PathBuf,
}

impl Node {
    fn start(dir: &TempDir, config: &std::path::Path, notify_socket: &str) -> Node {
        let stdout = dir.path("stdout");
        // A file, not a pipe: what the node printed can be read at any moment without waiting.
        let file = std::fs::File::create(&stdout).unwrap();
        let child = Command::new(busway_bin())
            .args(["run", "-c", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", notify_socket)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Node { child, stdout }
    }
    fn printed(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    fn wait_exit(&mut self) -> Option<i32> {
        wait_for(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next notification, within 10 s.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no notification: {e}"),
    }
}

fn config(dir: &TempDir, service: &str) -> std::path::PathBuf {
    dir.write(
        "n.toml",
        &format!(
            "[node]\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"tcp://127.0.0.1:0\"\n[[service]]\nname = \"{service}\"\nlisten = [\"tcp://127.0.0.1:0\"]\nbackends = [\"tcp://127.0.0.1:1\"]\n"
        ),
    )
}

#[test]
fn ready_after_the_ready_line_then_reloading_and_stopping() {
    let dir = TempDir::new("notify");
    let sock_path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let cfg = config(&dir, "chat");
    let mut node = Node::start(&dir, &cfg, sock_path.to_str().unwrap());

    let msg = next(&sock);
    // The node wrote its lines before it sent the datagram, so they are in the file already.
    let printed = node.printed();
    assert!(
        printed.lines().any(|l| l.starts_with("listening admin ")),
        "{printed}"
    );
    assert_eq!(printed.lines().last(), Some("ready"), "{printed}");
    assert_eq!(msg, "READY=1\nSTATUS=ready: 2 listeners\n");

    config(&dir, "chat2");
    node.signal("-HUP");
    let msg = next(&sock);
    assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
    let usec = msg.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..].to_string();
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{msg}");
    assert_eq!(
        next(&sock),
        "READY=1\nSTATUS=ready: configuration reloaded\n"
    );

    // A rejected reload still ends with READY=1: the previous configuration runs on.
    std::fs::write(&cfg, "[[service]]\nname = 5\n").unwrap();
    node.signal("-HUP");
    assert!(next(&sock).starts_with("RELOADING=1\n"));
    let msg = next(&sock);
    assert!(
        msg.starts_with(
            "READY=1\nSTATUS=ready: reload rejected, the previous configuration keeps running: "
        ),
        "{msg}"
    );
    assert_eq!(
        msg.lines().count(),
        2,
        "the error must stay on the STATUS line: {msg}"
    );

    node.signal("-TERM");
    let msg = next(&sock);
    assert!(msg.starts_with("STOPPING=1\nSTATUS=draining"), "{msg}");
    assert_eq!(node.wait_exit(), Some(0));
}

#[test]
fn an_abstract_notify_socket_works_too() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("busway-notify-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    let dir = TempDir::new("notify-abstract");
    let cfg = config(&dir, "chat");
    let mut node = Node::start(&dir, &cfg, &format!("@{name}"));
    assert!(next(&sock).starts_with("READY=1\n"));
    node.signal("-TERM");
    assert!(next(&sock).starts_with("STOPPING=1\n"));
    assert_eq!(node.wait_exit(), Some(0));
}

/// Nobody listening on the socket (a manager gone, a stale variable) changes nothing.
#[test]
fn a_notify_socket_nobody_listens_on_is_harmless() {
    let dir = TempDir::new("notify-none");
    let cfg = config(&dir, "chat");
    let mut node = Node::start(&dir, &cfg, dir.path("nobody.sock").to_str().unwrap());
    assert!(wait_for(Duration::from_secs(10), || node
        .printed()
        .ends_with("ready\n")));
    node.signal("-HUP");
    node.signal("-TERM");
    assert_eq!(node.wait_exit(), Some(0));
}
