//! The sd_notify(3) protocol: tells a service manager (systemd with `Type=notify`) that the node
//! is ready, reloading or stopping, so that `systemctl start` returns once every listener is
//! bound, and `systemctl status` shows what the node is doing.
//!
//! It is one datagram per change to the socket named by `$NOTIFY_SOCKET` (a path, or `@NAME` for
//! an abstract socket). Without the variable nothing is sent. A notification that cannot be sent
//! is logged and otherwise ignored: the node serves whether or not anyone listens, and the socket
//! is non-blocking so a stuck manager cannot stall it.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where notifications go; does nothing when the node was not started by a service manager.
#[derive(Debug)]
pub struct Notify {
    to: Option<(UnixDatagram, SocketAddr)>,
}

impl Notify {
    /// From `$NOTIFY_SOCKET`.
    pub fn from_env() -> Notify {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notify::to(&v.to_string_lossy()),
            _ => Notify { to: None },
        }
    }

    /// To the socket named `name` as `$NOTIFY_SOCKET` spells it.
    fn to(name: &str) -> Notify {
        let opened = address(name).and_then(|addr| {
            let sock = UnixDatagram::unbound()?;
            sock.set_nonblocking(true)?;
            Ok((sock, addr))
        });
        match opened {
            Ok(to) => Notify { to: Some(to) },
            Err(e) => {
                tracing::warn!(socket = name, error = %e, "cannot notify the service manager");
                Notify { to: None }
            }
        }
    }

    /// Start-up or a reload is over: `READY=1`.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)));
    }

    /// A reload starts. `MONOTONIC_USEC` lets systemd (253 and later, `Type=notify-reload`) tell
    /// this reload from an earlier one.
    pub fn reloading(&self) {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = t.tv_sec as i128 * 1_000_000 + t.tv_nsec as i128 / 1_000;
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration\n"
        ));
    }

    /// Draining has started.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}\n", one_line(status)));
    }

    fn send(&self, msg: &str) {
        let Some((sock, addr)) = &self.to else {
            return;
        };
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }
}

/// `STATUS=` ends at the line's end; an error message with several lines must not add
/// assignments of its own.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn address(name: &str) -> std::io::Result<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        return abstract_address(abstract_name);
    }
    if !name.starts_with('/') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "only a path or an @abstract name is supported",
        ));
    }
    SocketAddr::from_pathname(name)
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> std::io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_: &str) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let path = std::env::temp_dir().join(format!("busway-notify-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = UnixDatagram::bind(&path).unwrap();
        let n = Notify::to(path.to_str().unwrap());
        n.ready("ready: 2 listeners");
        assert_eq!(recv(&s), "READY=1\nSTATUS=ready: 2 listeners\n");
        n.reloading();
        let m = recv(&s);
        assert!(m.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{m}");
        let usec: u64 = m.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
        n.stopping("draining\nREADY=1");
        assert_eq!(recv(&s), "STOPPING=1\nSTATUS=draining READY=1\n");
        let _ = std::fs::remove_file(&path);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("busway-notify-unit-{}", std::process::id());
        let s = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        Notify::to(&format!("@{name}")).ready("x");
        assert_eq!(recv(&s), "READY=1\nSTATUS=x\n");
    }

    #[test]
    fn nothing_and_no_panic_without_a_listener() {
        Notify { to: None }.ready("x");
        Notify::to("/nonexistent/busway/notify").ready("x");
        Notify::to("vsock:2:1234").ready("x");
        Notify::to("@").stopping("x");
    }
}
