//! The blocking HTTP/1.1 client of the commands that talk to a running node's admin API
//! (`status`, `reload`).
//!
//! `--admin` can point at anything, so whatever answers is treated as hostile: the whole request
//! has one deadline (connect, write and every read) and the answer is read with the caps of
//! [`crate::http_answer`], so a command ends with a clear error instead of hanging or filling
//! memory. Plain `std` sockets keep these one-shot commands free of the runtime; an `https://`
//! URL (a node with `[admin.tls]`) runs rustls over the same blocking socket, verifying the
//! node's certificate against `--ca` (or the system's CAs) and the URL's host.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_net::tls::{ClientConfig, ServerName};

use crate::http_answer::{read_answer, Answer, Fault, MAX_BODY};

/// How long one request may take, from connect to the last byte of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong, worded for the operator. `usage` errors are the caller's (a bad URL or
/// token) and exit 2 like clap's; every other one exits 1.
#[derive(Debug)]
pub struct Error {
    usage: bool,
    msg: String,
}

impl Error {
    /// Prints the error for `busway COMMAND` and returns its exit status.
    pub fn report(&self, command: &str) -> std::process::ExitCode {
        eprintln!("busway {command}: {}", self.msg);
        std::process::ExitCode::from(if self.usage { 2 } else { 1 })
    }
    fn usage(msg: String) -> Error {
        Error { usage: true, msg }
    }
    pub fn runtime(msg: String) -> Error {
        Error { usage: false, msg }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// One node's admin API, with the bearer token to send (CONTRACT section 8).
#[derive(Debug)]
pub struct Client {
    /// `HOST:PORT`
    hostport: String,
    token: Option<String>,
    timeout: Duration,
    /// For an `https://` URL: how the node's certificate is verified, and the name it must
    /// carry (the URL's host).
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Client {
    /// `url` is `http://HOST:PORT`, `tcp://HOST:PORT` (as a node prints it in its `listening
    /// admin` line), `https://HOST:PORT` (a node with `[admin.tls]`; its certificate is
    /// verified against `ca`, or the system's CAs without it) or `HOST:PORT`.
    pub fn new(url: &str, token: Option<String>, ca: Option<&Path>) -> Result<Client, Error> {
        let (hostport, https) = parse_url(url)?;
        if ca.is_some() && !https {
            return Err(Error::usage(format!(
                "--ca is for https:// admin URLs; {url} is not one"
            )));
        }
        let tls = if https {
            let host = host_of(&hostport);
            let name = ServerName::try_from(host.to_string()).map_err(|_| {
                Error::usage(format!(
                    "--admin {url}: {host:?} is not a host name or address"
                ))
            })?;
            let config =
                busway_net::tls::https_client(ca).map_err(|e| Error::usage(e.to_string()))?;
            Some((config, name))
        } else {
            None
        };
        if token
            .as_deref()
            .is_some_and(|t| t.chars().any(char::is_control))
        {
            // It would end the header line and let the rest be read as headers of its own.
            return Err(Error::usage(
                "the admin token contains a control character (a line break?)".into(),
            ));
        }
        Ok(Client {
            hostport,
            token,
            timeout: TIMEOUT,
            tls,
        })
    }

    #[cfg(test)]
    fn with_timeout(mut self, t: Duration) -> Client {
        self.timeout = t;
        self
    }

    /// `HOST:PORT`, for messages.
    pub fn name(&self) -> &str {
        &self.hostport
    }

    /// Sends `METHOD PATH` with an empty body and reads the answer, whatever its status.
    pub fn request(&self, method: &str, path: &str) -> Result<Answer, Error> {
        let until = Instant::now() + self.timeout;
        let mut conn = self.connect(until)?;
        let host = &self.hostport;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let length = if method == "GET" {
            ""
        } else {
            "Content-Length: 0\r\n"
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: busway/{}\r\nAccept: application/json\r\n{auth}{length}Connection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let io_err = |e: io::Error| self.io_error(e);
        conn.tcp()
            .set_write_timeout(Some(left(until).map_err(io_err)?))
            .map_err(io_err)?;
        // The TLS handshake, if any, runs within the first write and the reads of the answer,
        // under the same deadline.
        conn.write_all(head.as_bytes()).map_err(io_err)?;
        conn.flush().map_err(io_err)?;
        let mut r = BufReader::new(Deadline {
            conn: &mut conn,
            until,
        });
        read_answer(&mut r).map_err(|e| match e {
            Fault::Io(e) => self.io_error(e),
            Fault::TooLarge => Error::runtime(format!(
                "{path}: the answer from {} is larger than {} MiB (is it a busway admin API?)",
                self.name(),
                MAX_BODY >> 20
            )),
            Fault::Malformed(what) => Error::runtime(format!(
                "{path}: malformed HTTP answer from {}: {what}",
                self.name()
            )),
        })
    }

    /// `GET PATH`, expecting 200 and a JSON body.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, Error> {
        let a = self.request("GET", path)?;
        if a.status != 200 {
            return Err(Error::runtime(format!(
                "{path}: HTTP {}: {}",
                a.status,
                a.error_text()
            )));
        }
        serde_json::from_slice(&a.body).map_err(|e| Error::runtime(format!("{path}: {e}")))
    }

    fn connect(&self, until: Instant) -> Result<Wire, Error> {
        let sock = self.connect_tcp(until)?;
        Ok(match &self.tls {
            None => Wire::Plain(sock),
            Some((config, name)) => {
                let c = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| Error::runtime(format!("TLS to {}: {e}", self.name())))?;
                Wire::Tls(Box::new(rustls::StreamOwned::new(c, sock)))
            }
        })
    }

    fn connect_tcp(&self, until: Instant) -> Result<TcpStream, Error> {
        let reach = |e: io::Error| {
            let e = if is_timeout(&e) {
                io::Error::new(io::ErrorKind::TimedOut, "timed out")
            } else {
                e
            };
            Error::runtime(format!("cannot reach {}: {e}", self.name()))
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in self.hostport.to_socket_addrs().map_err(reach)? {
            match TcpStream::connect_timeout(&addr, left(until).map_err(reach)?) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(reach(last))
    }

    fn io_error(&self, e: io::Error) -> Error {
        if is_timeout(&e) {
            Error::runtime(format!(
                "{} did not answer within {} s",
                self.name(),
                self.timeout.as_secs_f64()
            ))
        } else {
            Error::runtime(format!("talking to {}: {e}", self.name()))
        }
    }
}

/// `HOST:PORT` of an admin URL, and whether it is `https://`.
fn parse_url(url: &str) -> Result<(String, bool), Error> {
    let bad = |why: &str| Error::usage(format!("--admin {url}: {why}"));
    let (rest, https) = match url.strip_prefix("https://") {
        Some(r) => (r, true),
        None => (
            url.strip_prefix("http://")
                .or_else(|| url.strip_prefix("tcp://"))
                .unwrap_or(url),
            false,
        ),
    };
    if rest.contains("://") {
        return Err(bad(
            "expected http://HOST:PORT, https://HOST:PORT or tcp://HOST:PORT",
        ));
    }
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains('/') || !hostport.contains(':') {
        return Err(bad("expected http://HOST:PORT"));
    }
    Ok((hostport.to_string(), https))
}

/// `HOST` of `HOST:PORT`, without the brackets of an IPv6 literal.
fn host_of(hostport: &str) -> &str {
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The connection to the admin API: plain TCP, or TLS over it.
enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Wire {
    /// The socket underneath, for its timeouts.
    fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(s) => &s.sock,
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// Reads that share one deadline: a peer trickling a byte at a time cannot stretch the request
/// past it, as it could with a timeout per read.
struct Deadline<'a> {
    conn: &'a mut Wire,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.tcp().set_read_timeout(Some(left(self.until)?))?;
        self.conn.read(buf)
    }
}

/// The time left before `until`, or a timeout error once it has passed.
fn left(until: Instant) -> io::Result<Duration> {
    let d = until.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(d)
    }
}

/// A socket read timeout shows up as `WouldBlock` on Linux.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn admin_urls() {
        for (url, want, https) in [
            ("http://127.0.0.1:9901", "127.0.0.1:9901", false),
            ("tcp://[::1]:9901/", "[::1]:9901", false),
            ("localhost:9901", "localhost:9901", false),
            ("https://node.example:9901", "node.example:9901", true),
        ] {
            let got = parse_url(url).ok();
            assert_eq!(got, Some((want.to_string(), https)), "{url}");
        }
        assert_eq!(host_of("[::1]:9901"), "::1");
        assert_eq!(host_of("node.example:9901"), "node.example");
        for bad in [
            "ftp://127.0.0.1:9901",
            "http://h:1/v1",
            "unix:///run/busway/admin.sock",
            "",
            "nohost",
        ] {
            assert!(parse_url(bad).is_err_and(|e| e.usage), "{bad}");
        }
    }

    #[test]
    fn a_token_cannot_add_header_lines() {
        let c = Client::new("http://h:1", Some("a\r\nX-Evil: 1".into()), None);
        assert!(c.is_err_and(|e| e.usage));
    }

    #[test]
    fn a_ca_needs_an_https_url_and_a_readable_file() {
        let c = Client::new("http://h:1", None, Some(Path::new("/etc/hostname")));
        assert!(c.is_err_and(|e| e.usage && e.msg.contains("--ca is for https://")));
        let c = Client::new("https://h:1", None, Some(Path::new("/nonexistent/ca.crt")));
        assert!(c.is_err_and(|e| e.usage && e.msg.contains("/nonexistent/ca.crt")));
    }

    /// A server that sends a head and then one byte every 100 ms never finishes the answer: the
    /// request ends at its deadline although no single read waits that long.
    #[test]
    fn a_trickling_answer_ends_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(100));
                if s.write_all(b"x").is_err() {
                    break;
                }
            }
        });
        let c = Client::new(&addr.to_string(), None, None)
            .unwrap()
            .with_timeout(Duration::from_millis(700));
        let start = Instant::now();
        let e = c.request("GET", "/v1/services").unwrap_err();
        assert!(e.to_string().contains("did not answer within 0.7 s"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
