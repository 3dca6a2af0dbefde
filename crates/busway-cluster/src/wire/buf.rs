//! Bounded readers and writers of the wire's few field kinds.
//!
//! Every read checks the length left before it slices, so hostile bytes end in
//! [`Malformed`], never in a panic or an allocation larger than the datagram itself.

/// The bytes do not parse; what the field was, for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct Malformed(pub &'static str);

/// Reads fields front to back from one datagram.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Malformed> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, Malformed> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed(what)),
        }
    }

    /// A string of at most `max` bytes behind a one-byte length; it must be UTF-8 without
    /// control characters, since names end up in logs and in the admin API.
    pub(crate) fn text(&mut self, max: usize, what: &'static str) -> Result<String, Malformed> {
        let n = usize::from(self.u8(what)?);
        if n > max {
            return Err(Malformed(what));
        }
        let s = std::str::from_utf8(self.take(n, what)?).map_err(|_| Malformed(what))?;
        if s.chars().any(char::is_control) {
            return Err(Malformed(what));
        }
        Ok(s.to_owned())
    }
}

/// Appends fields; the caller keeps within the caps, which [`crate::Config::validate`] checks
/// for everything of our own that goes out.
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer {
            buf: Vec::with_capacity(256),
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// A string behind its one-byte length, cut at 255 bytes (at a character boundary) so a
    /// caller's mistake makes a shorter name, never a frame that misparses.
    pub(crate) fn text(&mut self, s: &str) {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.buf.push(end as u8);
        self.buf.extend_from_slice(&s.as_bytes()[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16("a"), Ok(1));
        assert_eq!(r.u32("b"), Err(Malformed("b")));
        assert_eq!(r.u8("c"), Ok(2));
        assert!(r.is_empty());
    }

    #[test]
    fn text_is_capped_and_clean() {
        let mut w = Writer::new();
        w.text("node-a");
        w.text("bad\nname");
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.text(6, "a").as_deref(), Ok("node-a"));
        assert_eq!(r.text(64, "b"), Err(Malformed("b")));
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.text(5, "a"), Err(Malformed("a")), "over the cap");
        let mut w = Writer::new();
        w.text(&"é".repeat(200));
        assert_eq!(w.buf[0], 254, "cut at a character boundary");
    }

    #[test]
    fn bools_are_zero_or_one() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.bool("x"), Ok(false));
        assert_eq!(r.bool("x"), Ok(true));
        assert!(r.bool("x").is_err());
    }
}
