//! The one error type every loader returns.
//!
//! A configuration error is read by an operator at a terminal, so it carries exactly what they need
//! to find and fix the mistake — the file, the line, the dotted key — and prints as one line that
//! editors and `grep` understand (`FILE:LINE: KEY: MESSAGE`).

use std::fmt;

/// What is wrong with a configuration file, and where.
///
/// `Display` prints `FILE:LINE: KEY: MESSAGE`; `:LINE` is left out when there is no line (a file
/// that cannot be read, a rule about the whole file) and `KEY: ` when there is no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the caller named it (a path, or a label such as `<stdin>`).
    pub file: String,
    /// 1-based line number, where the mistake has one.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `service.connect_timeout` (see the crate docs for the naming).
    pub key: String,
    /// What is wrong, as one line. Never contains a secret's value.
    pub message: String,
}

impl ConfigError {
    pub fn new(
        file: &str,
        line: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: one_line(file.to_string()),
            line,
            key: one_line(key.into()),
            message: one_line(message.into()),
        }
    }
}

/// A file name, a key or a value quoted in a message can hold a newline, a carriage return or
/// an escape sequence (a TOML string or quoted key may contain any of them): printed raw, it
/// would split the one-line error or rewrite the operator's terminal, so control characters
/// are shown escaped (`\n`, `\u{1b}`).
fn one_line(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line_and_key() {
        let e = ConfigError::new("busway.toml", Some(12), "service.mode", "bad");
        assert_eq!(e.to_string(), "busway.toml:12: service.mode: bad");
        let e = ConfigError::new("busway.toml", None, "node", "bad");
        assert_eq!(e.to_string(), "busway.toml: node: bad");
        let e = ConfigError::new("busway.toml", None, "", "No such file or directory");
        assert_eq!(e.to_string(), "busway.toml: No such file or directory");
    }

    /// Found by the `toml` fuzz target: a lone `\r` in a table header became part of the key.
    #[test]
    fn control_characters_are_escaped_so_the_error_stays_one_line() {
        let e = ConfigError::new("a\nb.toml", Some(1), "x\ry", "bad \"v\u{1b}[2J\u{0}\"\t");
        assert_eq!(
            e.to_string(),
            "a\\nb.toml:1: x\\ry: bad \"v\\u{1b}[2J\\u{0}\"\\t"
        );
        let e = ConfigError::new("f", None, "k\u{e9}", "caf\u{e9} \u{2028}");
        assert_eq!(e.to_string(), "f: k\u{e9}: caf\u{e9} \u{2028}");
    }
}
