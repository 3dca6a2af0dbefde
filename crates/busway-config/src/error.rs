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
    pub(crate) fn new(
        file: &str,
        line: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }
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
}
