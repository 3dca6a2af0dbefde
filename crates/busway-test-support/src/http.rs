//! A tiny blocking HTTP/1.1 client for the admin API: one request per connection
//! ([`request`], [`get`]), or a connection kept open for several ([`Client`]), written byte by
//! byte as the test says, so tests can send what a browser would not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An answer: status code, headers and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses the head (status line and headers, without the empty line).
    fn from_head(head: &str, body: String) -> Answer {
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Answer {
            status,
            headers,
            body,
        }
    }
}

fn hostport(addr: &str) -> &str {
    addr.trim_start_matches("tcp://")
        .trim_start_matches("http://")
}

/// Sends one request; `addr` is `HOST:PORT` or a `tcp://`/`http://` URL.
pub fn request(method: &str, addr: &str, path: &str, token: Option<&str>, body: &[u8]) -> Answer {
    let addr = hostport(addr);
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer::from_head(head, body.to_string())
}

pub fn get(addr: &str, path: &str) -> Answer {
    request("GET", addr, path, None, b"")
}

/// One admin connection kept open across requests.
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let host = hostport(addr).to_string();
        let stream = TcpStream::connect(&host).expect("connect admin");
        Client::over(stream, &host)
    }

    /// A client on a socket the test connected itself (to set socket options first).
    pub fn over(stream: TcpStream, host: &str) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Client {
            stream,
            host: host.to_string(),
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes; false if the connection no longer takes them.
    pub fn send(&mut self, raw: &[u8]) -> bool {
        self.stream.write_all(raw).is_ok()
    }

    /// Sends a request with `Content-Length` (and `headers`, each `Name: value`), reads its answer.
    pub fn request(&mut self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        assert!(self.send(head.as_bytes()), "write head");
        assert!(self.send(body), "write body");
        self.answer().expect("an answer")
    }

    /// Reads one answer framed by `Content-Length` (none for 204 and 1xx); `None` if the
    /// connection ends first.
    pub fn answer(&mut self) -> Option<Answer> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut a = Answer::from_head(&head, String::new());
        let len: usize = a
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.buf.drain(..head_end + 4);
        while self.buf.len() < len {
            self.fill()?;
        }
        a.body = String::from_utf8_lossy(&self.buf[..len]).to_string();
        self.buf.drain(..len);
        Some(a)
    }

    fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }

    /// Waits up to `limit` for the server to close the connection (EOF or reset), dropping
    /// whatever it sends meanwhile; how long that took from `since`, or `None` if still open.
    pub fn closed_within(&mut self, since: Instant, limit: Duration) -> Option<Duration> {
        let deadline = since + limit;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(since.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(_) => return Some(since.elapsed()),
            }
        }
    }
}
