//! Reading one HTTP/1.1 answer with caps: the status line and headers together at most 64 KiB,
//! the body at most [`MAX_BODY`] however it is framed (`Content-Length`, chunked, or up to the
//! close). The other end may be anything `--admin` was pointed at, so a lie about a length is
//! caught before anything is allocated for it.

use std::io::{self, BufRead, Read};

/// The largest answer body read. `/v1/sessions` of a node with 10,000 sessions is about 2 MiB.
pub const MAX_BODY: usize = 8 << 20;
/// The status line and headers together.
const MAX_HEAD: usize = 64 << 10;
/// A chunk-size line of a chunked body (hex digits and extensions).
const MAX_CHUNK_LINE: usize = 1024;

/// An answer: the status code and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The `error` text of a JSON error body (CONTRACT section 8), else the body itself, made
    /// safe for a terminal.
    pub fn error_text(&self) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string());
        printable(&text, 512)
    }
}

/// Text from the other end, cut to `max` characters, with control characters (terminal escapes
/// among them) replaced.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Why an answer could not be read.
#[derive(Debug)]
pub enum Fault {
    Io(io::Error),
    TooLarge,
    Malformed(String),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Fault {
        Fault::Io(e)
    }
}

fn malformed(what: impl Into<String>) -> Fault {
    Fault::Malformed(what.into())
}

/// Reads one answer: status line, headers, then the body.
pub fn read_answer(r: &mut impl BufRead) -> Result<Answer, Fault> {
    let mut head_left = MAX_HEAD;
    let status_line = read_line(r, &mut head_left, "the head")?;
    let bad_status = || malformed(format!("status line {:?}", printable(&status_line, 80)));
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => {
            code.parse::<u16>().map_err(|_| bad_status())?
        }
        _ => return Err(bad_status()),
    };
    let mut length = None;
    let mut chunked = false;
    loop {
        let line = read_line(r, &mut head_left, "the head")?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(format!("header {:?}", printable(&line, 80))))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| malformed(format!("Content-Length {:?}", printable(value, 40))))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        read_chunked(r)?
    } else if let Some(n) = length {
        read_length(r, n)?
    } else {
        read_to_close(r)?
    };
    Ok(Answer { status, body })
}

fn read_length(r: &mut impl BufRead, n: u64) -> Result<Vec<u8>, Fault> {
    if n > MAX_BODY as u64 {
        return Err(Fault::TooLarge);
    }
    let mut body = Vec::new();
    r.by_ref().take(n).read_to_end(&mut body)?;
    if (body.len() as u64) < n {
        return Err(malformed(format!(
            "the connection closed after {} of {n} body bytes",
            body.len()
        )));
    }
    Ok(body)
}

fn read_to_close(r: &mut impl BufRead) -> Result<Vec<u8>, Fault> {
    let mut body = Vec::new();
    r.by_ref()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)?;
    if body.len() > MAX_BODY {
        return Err(Fault::TooLarge);
    }
    Ok(body)
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, Fault> {
    let mut body = Vec::new();
    loop {
        let mut line_left = MAX_CHUNK_LINE;
        let line = read_line(r, &mut line_left, "a chunk size")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| malformed(format!("chunk size {:?}", printable(hex, 40))))?;
        if size == 0 {
            // Trailers, up to the empty line; what is in them does not matter here.
            let mut trailers_left = MAX_HEAD;
            while !read_line(r, &mut trailers_left, "the trailers")?.is_empty() {}
            return Ok(body);
        }
        if size > MAX_BODY - body.len() {
            return Err(Fault::TooLarge);
        }
        let before = body.len();
        r.by_ref().take(size as u64).read_to_end(&mut body)?;
        if body.len() - before < size {
            return Err(malformed("the connection closed inside a chunk"));
        }
        let mut end = [0u8; 2];
        match r.read_exact(&mut end) {
            Ok(()) if end == *b"\r\n" => {}
            Ok(()) => return Err(malformed("a chunk longer than its size")),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(malformed("the connection closed after a chunk"))
            }
            Err(e) => return Err(Fault::Io(e)),
        }
    }
}

/// One line without its CRLF (or LF), at most `*budget` bytes, taken from the budget.
fn read_line(r: &mut impl BufRead, budget: &mut usize, what: &str) -> Result<String, Fault> {
    let mut line = Vec::new();
    r.by_ref()
        .take(*budget as u64)
        .read_until(b'\n', &mut line)?;
    *budget -= line.len();
    if line.last() != Some(&b'\n') {
        return Err(if *budget == 0 {
            malformed(format!("{what} is too long"))
        } else {
            malformed(format!("the connection closed in {what}"))
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(raw: &[u8]) -> Answer {
        match read_answer(&mut &raw[..]) {
            Ok(a) => a,
            Err(e) => panic!("refused: {e:?}"),
        }
    }

    fn fault(raw: &[u8]) -> String {
        match read_answer(&mut &raw[..]) {
            Ok(a) => panic!("accepted: {} {:?}", a.status, a.body),
            Err(Fault::TooLarge) => "too large".into(),
            Err(Fault::Malformed(m)) => m,
            Err(Fault::Io(e)) => e.to_string(),
        }
    }

    #[test]
    fn bodies_framed_by_length_chunks_or_close() {
        let a = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]extra");
        assert_eq!((a.status, a.body.as_slice()), (200, &b"[]"[..]));
        let a = answer(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"e\r\n1\r\n}\r\n0\r\nTrailer: 1\r\n\r\n",
        );
        assert_eq!((a.status, a.body.as_slice()), (409, &b"{\"e}"[..]));
        let a = answer(b"HTTP/1.0 200 OK\n\nuntil close");
        assert_eq!(a.body, b"until close");
    }

    #[test]
    fn oversized_or_broken_answers_are_refused() {
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(fault(huge.as_bytes()), "too large");
        let chunk = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY + 1
        );
        assert_eq!(fault(chunk.as_bytes()), "too large");
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.resize(MAX_BODY + 100, b'x');
        assert_eq!(fault(&endless), "too large");
        let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long_head.resize(MAX_HEAD + 10, b'a');
        assert!(fault(&long_head).contains("too long"));
        for (raw, want) in [
            (&b"SSH-2.0-OpenSSH\r\n\r\n"[..], "status line"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "after 5 of 10",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "Content-Length",
            ),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "header"),
            (b"HTTP/1.1 200", "closed in the head"),
        ] {
            assert!(fault(raw).contains(want), "{want}: {}", fault(raw));
        }
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (rest, want) in [
            ("zz\r\n", "chunk size"),
            ("1\r\nabc\r\n", "longer"),
            ("5\r\nab", "inside a chunk"),
            ("2\r\nab", "closed after a chunk"),
            ("0\r\nX: 1\r\n", "closed in the trailers"),
        ] {
            let raw = format!("{chunked}{rest}");
            assert!(fault(raw.as_bytes()).contains(want), "{want}");
        }
    }

    #[test]
    fn error_text_is_the_json_error_made_printable() {
        let a = Answer {
            status: 400,
            body: br#"{"error":"line 3: bad \u001b[31mkey"}"#.to_vec(),
        };
        assert_eq!(a.error_text(), "line 3: bad \u{fffd}[31mkey");
        let a = Answer {
            status: 502,
            body: b"  bad gateway\n".to_vec(),
        };
        assert_eq!(a.error_text(), "bad gateway");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("abc", 3), "abc");
    }
}
