//! Binding listeners and accepting connections.
//!
//! Unix listeners follow the contract: a stale socket file left by a dead process is removed, but
//! a path held by anything that is not a socket is refused and left untouched — an operator's
//! typo must never delete a file.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use busway_config::Address;
use tokio::net::{TcpListener, UnixListener};

use crate::conn::Conn;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot bind {address}: {source}")]
    Io { address: String, source: io::Error },
    #[error("cannot bind {path}: the path exists and is not a socket; refusing to remove it")]
    NotASocket { path: String },
    #[error("cannot listen on {0}: only tcp:// and unix:// addresses can be listened on")]
    Unsupported(String),
}

#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// The path is kept so that the node can remove the file it created at shutdown.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `address` (resolving a TCP host name through the system resolver once, as every
    /// server does at start-up).
    pub async fn bind(address: &Address) -> Result<Listener, BindError> {
        let io_err = |source| BindError::Io {
            address: address.to_string(),
            source,
        };
        match address {
            Address::Tcp { host, port } => {
                let addrs = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(io_err)?;
                let mut last = None;
                for a in addrs {
                    match bind_tcp(a) {
                        Ok(l) => return Ok(Listener::Tcp(l)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(io_err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to bind")
                })))
            }
            Address::Unix(path) => {
                remove_stale_socket(path)?;
                let l = UnixListener::bind(path).map_err(io_err)?;
                Ok(Listener::Unix(l, path.clone()))
            }
            other => Err(BindError::Unsupported(other.to_string())),
        }
    }

    /// The URL of the real bound address (so a port-0 listener reports its port).
    pub fn local_url(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) if a.is_ipv6() => format!("tcp://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }

    /// Accepts one connection; returns it with a printable client address.
    pub async fn accept(&self) -> io::Result<(Conn, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                // Nagle is off already: the listener's TCP_NODELAY is inherited.
                Ok((Conn::Tcp(s), a.to_string()))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((Conn::Unix(s), format!("unix://{}", p.display())))
            }
        }
    }

    /// The socket file this listener created, if any.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Listener::Unix(_, p) => Some(p),
            Listener::Tcp(_) => None,
        }
    }
}

/// Connections the kernel queues before busway accepts them. Bursts of new sessions are what a
/// proxy is for; the kernel caps this at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Addresses listeners may bind before the host has them (IP_FREEBIND): the LAN cluster's
/// service address, which only its owner holds (CONTRACT section 7). Process-wide because the
/// address is the node's, not a listener's, and every listener of it, bound at start or by a
/// reload, needs the same; any other address still fails to bind when it is not local, so a
/// typo is still an error.
static FREEBIND: std::sync::RwLock<Vec<std::net::IpAddr>> = std::sync::RwLock::new(Vec::new());

/// Lets listeners bind `ip` whether or not it is on an interface yet.
pub fn allow_freebind(ip: std::net::IpAddr) {
    let mut v = FREEBIND.write().unwrap_or_else(|e| e.into_inner());
    if !v.contains(&ip) {
        v.push(ip);
    }
}

fn freebind(ip: std::net::IpAddr) -> bool {
    FREEBIND
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&ip)
}

fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if freebind(addr.ip()) {
        if addr.is_ipv6() {
            s.set_freebind_v6(true)?;
        } else {
            s.set_freebind_v4(true)?;
        }
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    // Accepted sockets inherit it from the listener (Linux), which saves a setsockopt per
    // connection: busway forwards what it reads at once and batches on its own.
    s.set_tcp_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    TcpListener::from_std(s.into())
}

fn remove_stale_socket(path: &Path) -> Result<(), BindError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| BindError::Io {
                address: format!("unix://{}", path.display()),
                source,
            })
        }
        Ok(_) => Err(BindError::NotASocket {
            path: path.display().to_string(),
        }),
        Err(_) => Ok(()),
    }
}

/// Removes a socket file this node created, if it is still a socket (never anything else).
pub fn remove_socket_file(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// busway no longer sets TCP_NODELAY per accepted socket: it relies on the listener's
    /// being inherited, which this checks on the running kernel.
    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let l = Listener::bind(&Address::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
        })
        .await
        .unwrap();
        let addr = l.local_url().trim_start_matches("tcp://").to_string();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (conn, _) = l.accept().await.unwrap();
        let Conn::Tcp(s) = conn else {
            panic!("not TCP")
        };
        assert!(s.nodelay().unwrap());
    }

    #[tokio::test]
    async fn refuses_to_replace_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("busway-l-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"keep me").unwrap();
        let err = Listener::bind(&Address::Unix(path.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, BindError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_and_reports_port() {
        let dir = std::env::temp_dir().join(format!("busway-s-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bus.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l = Listener::bind(&Address::Unix(path.clone())).await.unwrap();
        assert_eq!(l.local_url(), format!("unix://{}", path.display()));
        let t = Listener::bind(&Address::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
        })
        .await
        .unwrap();
        assert!(!t.local_url().ends_with(":0"), "{}", t.local_url());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
