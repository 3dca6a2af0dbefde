//! Turning toml's own syntax errors into one-line [`ConfigError`]s.
//!
//! toml reports a byte span and a message such as "duplicate key" that does not name the key, and
//! its `Display` is a multi-line snippet. Operators want `FILE:LINE: KEY: MESSAGE`, so the key is
//! recovered from the source text: the key written on the offending line (or the nearest line above
//! that assigns one, for errors inside a multi-line array), prefixed by the nearest `[section]`.

use crate::error::ConfigError;
use crate::toml_table::Source;

pub(crate) fn syntax_error(src: &Source<'_>, err: &toml::de::Error) -> ConfigError {
    let message = one_line(err.message());
    let Some(span) = err.span() else {
        return ConfigError::new(src.file, None, "", message);
    };
    let line = src.line(span.start);
    ConfigError::new(src.file, Some(line), key_at(src.text, line), message)
}

/// Messages are single lines today; this keeps them so if a future toml adds detail lines.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

/// The dotted key that line `line` (1-based) belongs to, or `""` if none can be told.
fn key_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let upto = line.min(lines.len());
    let mut key: Option<String> = None;
    for l in lines[..upto].iter().rev() {
        let t = l.trim_start();
        if let Some(header) = header_name(t) {
            return match key {
                Some(k) if !header.is_empty() => format!("{header}.{k}"),
                Some(k) => k,
                None => header,
            };
        }
        if key.is_none() {
            key = assigned_key(t);
        }
    }
    key.unwrap_or_default()
}

/// `[a.b]` or `[[a]]` → `a.b` / `a`.
fn header_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    Some(normalise_key(&inner[..end]))
}

/// `key = …`, `"quoted key" = …`, `a.b = …` → the key, if the text before `=` is a valid key
/// (so a line such as `"a=b",` inside an array is not mistaken for one).
fn assigned_key(line: &str) -> Option<String> {
    let mut in_quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (in_quote, c) {
            (Some(q), c) if c == q => in_quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => in_quote = Some(c),
            (None, '=') => {
                let k = line[..i].trim();
                return (!k.is_empty()).then(|| normalise_key(k));
            }
            (None, c) if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '\t') => {
            }
            (None, _) => return None,
        }
    }
    None
}

/// Drops the spaces around dots and the quotes of simple quoted keys: `a . "b"` → `a.b`.
fn normalise_key(k: &str) -> String {
    let parts: Vec<String> = k
        .split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_key_and_its_section() {
        let text = "[node]\nname = \"a\"\n\n[[service]]\nname = \"x\"\nbackends = [\n  \"a=b\",\n  1,,\n]\n";
        assert_eq!(key_at(text, 2), "node.name");
        assert_eq!(key_at(text, 4), "service");
        assert_eq!(key_at(text, 8), "service.backends");
        assert_eq!(key_at("a = 1", 1), "a");
        assert_eq!(key_at("[ a . \"b\" ]\nc=1", 2), "a.b.c");
    }

    #[test]
    fn errors_are_one_line_with_file_line_and_key() {
        let text = "[node]\nname = \"x\"\nname = \"y\"\n";
        let err = toml::de::DeTable::parse(text).unwrap_err();
        let src = Source::new("f.toml", text);
        let e = syntax_error(&src, &err);
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key, "node.name");
        assert!(!e.to_string().contains('\n'));
        assert!(e.to_string().starts_with("f.toml:3: node.name: "), "{e}");
    }
}
