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
    let line = match err.span() {
        Some(span) => src.line(span.start),
        None => match too_dotted_line(src.text) {
            Some(line) => line,
            None => return ConfigError::new(src.file, None, "", message),
        },
    };
    ConfigError::new(src.file, Some(line), key_at(src.text, line), message)
}

/// toml refuses a dotted key of 80 parts or more with "recursion limit" and no span (found by
/// reading its source after the fuzz targets' line invariant). Its line is the first with that
/// many dots outside quotes, where a key can be that deep at all.
fn too_dotted_line(text: &str) -> Option<usize> {
    const TOML_KEY_DEPTH_LIMIT: usize = 80;
    text.lines()
        .position(|l| unquoted_dots(l) + 1 >= TOML_KEY_DEPTH_LIMIT)
        .map(|i| i + 1)
}

fn unquoted_dots(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut dots = 0;
    for c in line.chars() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '.') => dots += 1,
            (None, _) => {}
        }
        escaped = false;
    }
    dots
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
    fn a_key_too_deep_for_toml_gets_its_line() {
        let deep = format!(
            "x = 1\n# {}\ny = \"{}\"\n\"a\"{} = 1\n",
            ".".repeat(90),
            ".".repeat(90),
            ".b".repeat(85)
        );
        let err = toml::de::DeTable::parse(&deep).unwrap_err();
        assert_eq!(
            err.span(),
            None,
            "toml now gives a span: drop too_dotted_line"
        );
        let e = syntax_error(&Source::new("f.toml", &deep), &err);
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().starts_with("f.toml:4: "), "{e}");
        assert_eq!(unquoted_dots(r#"a."b.c".'d.e'.f = "g.h" # i.j"#), 3);
        assert_eq!(unquoted_dots(r#""a\".b".c"#), 1);
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
