//! The line syntax of Cloudbus INI files (CONTRACT section 4): sections, `key=value` entries,
//! continuation lines, comments. What the keys mean is `ini`'s job.
//!
//! The rules follow the inih conventions Cloudbus users know: names are case-insensitive, `#` and
//! `;` start a comment at the start of a line or after whitespace, and a line that starts with
//! whitespace continues the previous key of the same section (blank and comment lines in between
//! do not break it).

use std::collections::HashMap;

use crate::error::ConfigError;

/// One `key=value`, or one continuation line of the key above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Lower-cased, as keys are case-insensitive.
    pub key: String,
    pub value: String,
    pub line: usize,
    /// True for a continuation line (its `key` is the key it continues).
    pub continuation: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Section {
    /// As written: a service keeps the name its operator gave it.
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// Splits `text` into sections. Duplicate section names (compared case-insensitively) are errors.
pub(crate) fn sections(text: &str, file: &str) -> Result<Vec<Section>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<Section> = Vec::new();
    // Lower-cased name -> header line, so a file of many sections is not quadratic to read.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        let err = |key: &str, msg: String| ConfigError::new(file, Some(line), key, msg);
        if let Some(rest) = content.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| err("", format!("missing ']' in section header \"{content}\"")))?
                .trim();
            if name.is_empty() {
                return Err(err("", "empty section name".to_string()));
            }
            if let Some(first) = seen.insert(name.to_ascii_lowercase(), line) {
                return Err(err(
                    name,
                    format!(
                        "duplicate section [{name}] (first on line {first}; section names are case-insensitive)"
                    ),
                ));
            }
            out.push(Section {
                name: name.to_string(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = out.last_mut() else {
            return Err(err(
                "",
                format!(
                    "\"{content}\" is outside any section; start the file with a [Section] header"
                ),
            ));
        };
        let indented = raw.starts_with([' ', '\t']);
        if let (true, Some(prev)) = (indented, section.entries.last()) {
            let key = prev.key.clone();
            section.entries.push(Entry {
                key,
                value: content.to_string(),
                line,
                continuation: true,
            });
            continue;
        }
        let (key, value) = content.split_once('=').ok_or_else(|| {
            err(
                &section.name,
                format!("expected KEY=VALUE, found \"{content}\""),
            )
        })?;
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(err(&section.name, "missing key before '='".to_string()));
        }
        section.entries.push(Entry {
            key,
            value: value.trim().to_string(),
            line,
            continuation: false,
        });
    }
    Ok(out)
}

/// Drops a `#` or `;` comment that starts the line or follows whitespace; a `#` inside a value
/// (`unix:///tmp/a#b`) is kept.
fn strip_comment(line: &str) -> &str {
    let mut prev_ws = true;
    for (i, c) in line.char_indices() {
        if (c == '#' || c == ';') && prev_ws {
            return &line[..i];
        }
        prev_ws = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_only_at_start_or_after_whitespace() {
        assert_eq!(strip_comment("# x"), "");
        assert_eq!(strip_comment("  ; x"), "  ");
        assert_eq!(strip_comment("a=b # x"), "a=b ");
        assert_eq!(strip_comment("a=b ; x"), "a=b ");
        assert_eq!(strip_comment("a=unix:///t/a#b"), "a=unix:///t/a#b");
    }

    #[test]
    fn continuation_lines_repeat_the_previous_key() {
        let s = sections("[A]\nServer=x\n  y\n\n\ty # c\n", "f").unwrap();
        let e = &s[0].entries;
        assert_eq!(e.len(), 3);
        assert!(e.iter().all(|e| e.key == "server"));
        assert_eq!(e[2].value, "y");
        assert_eq!(e[2].line, 5);
        assert!(e[1].continuation && !e[0].continuation);
    }

    #[test]
    fn syntax_errors_have_lines() {
        let e = sections("x=1\n", "f").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = sections("[A]\nnonsense\n", "f").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (Some(2), "A"));
        let e = sections("[A\n", "f").unwrap_err();
        assert!(e.message.contains("missing ']'"));
        let e = sections("[A]\n[]\n", "f").unwrap_err();
        assert!(e.message.contains("empty section"));
        let e = sections("[A]\n=1\n", "f").unwrap_err();
        assert!(e.message.contains("missing key"));
    }
}
