//! Typed, located reads from a parsed TOML table.
//!
//! The file is parsed into toml's span-carrying [`DeTable`] and read by hand rather than through
//! serde structs: every value keeps its byte span, so every error — a wrong type, an unknown key,
//! a rule that involves two keys — names its line and dotted key, with one message style.

use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::draft::{parse_address, At};
use crate::duration::parse_duration;
use crate::error::ConfigError;
use crate::model::Address;

/// The text being read, for turning byte spans into line numbers.
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
    /// Byte offsets of every `\n`. Every located value asks for its line, so counting newlines
    /// from the start each time made loading quadratic: a 1.7 MB file of 20,000 services took a
    /// minute.
    newlines: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let newlines = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Source {
            file,
            text,
            newlines,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }

    pub fn err(&self, span: &Range<usize>, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, Some(self.line(span.start)), key, msg)
    }
}

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;
type Res<T> = Result<T, ConfigError>;

/// A list's own location (for errors about the list as a whole) and its located entries.
pub(crate) type List<T> = (At<()>, Vec<At<T>>);

/// A table and the dotted path that leads to it (`""` for the document, `"service"` for each
/// `[[service]]`: see the crate docs for why services are not indexed).
pub(crate) struct Table<'a, 'i> {
    pub src: &'a Source<'a>,
    pub table: &'a DeTable<'i>,
    pub span: Range<usize>,
    pub path: String,
}

/// "a string", "an integer", … for type-mismatch messages.
fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn root(src: &'a Source<'a>, doc: &'a Spanned<DeTable<'i>>) -> Self {
        Table {
            src,
            table: doc.get_ref(),
            span: doc.span(),
            path: String::new(),
        }
    }

    /// The dotted path of one of this table's keys.
    pub fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The line of this table's header (or inline table).
    pub fn line(&self) -> usize {
        self.src.line(self.span.start)
    }

    pub fn err(&self, span: &Range<usize>, name: &str, msg: impl Into<String>) -> ConfigError {
        self.src.err(span, &self.key(name), msg)
    }

    /// An error about the table as a whole, reported at its header.
    pub fn err_here(&self, name: &str, msg: impl Into<String>) -> ConfigError {
        self.err(&self.span.clone(), name, msg)
    }

    /// Keys in the order they were written, so the first problem reported is the first in the file.
    /// Each entry is its key, the key's span and the value.
    pub fn entries(&self) -> Vec<(&'a str, Range<usize>, &'a Value<'i>)> {
        let mut v: Vec<_> = self
            .table
            .iter()
            .map(|(k, val)| (k.get_ref().as_ref(), k.span(), val))
            .collect();
        v.sort_by_key(|(_, span, _)| span.start);
        v
    }

    /// Unknown keys are errors, not silently ignored (CONTRACT section 3).
    pub fn deny_unknown(&self, allowed: &[&str]) -> Res<()> {
        for (name, span, _) in self.entries() {
            if !allowed.contains(&name) {
                let expected: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
                return Err(self.src.err(
                    &span,
                    &self.key(name),
                    format!(
                        "unknown key `{name}`, expected one of {}",
                        expected.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&'a Value<'i>> {
        self.table.get(name)
    }

    fn at<T>(&self, name: &str, v: &Value<'_>, value: T) -> At<T> {
        At::new(value, Some(self.src.line(v.span().start)), self.key(name))
    }

    fn expected(&self, name: &str, v: &Value<'_>, what: &str) -> ConfigError {
        self.err(
            &v.span(),
            name,
            format!("expected {what}, found {}", kind(v.get_ref())),
        )
    }

    pub fn string(&self, name: &str) -> Res<Option<At<String>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some(self.at(name, v, s.to_string()))),
            _ => Err(self.expected(name, v, "a string")),
        }
    }

    /// A required string: a missing key is reported at the table's header.
    pub fn required_string(&self, name: &str) -> Res<At<String>> {
        self.string(name)?
            .ok_or_else(|| self.err_here(name, format!("missing key `{name}`")))
    }

    /// A string or an array of strings, as a list (a string is a list of one).
    pub fn string_or_strings(&self, name: &str) -> Res<Option<List<String>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some((
                self.at(name, v, ()),
                vec![self.at(name, v, s.to_string())],
            ))),
            DeValue::Array(_) => self.strings(name),
            _ => Err(self.expected(name, v, "a string or an array of strings")),
        }
    }

    /// An array of strings: the array's own location, and each element with its line.
    pub fn strings(&self, name: &str) -> Res<Option<List<String>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.expected(name, v, "an array of strings"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(self.at(name, item, s.to_string())),
                _ => return Err(self.expected(name, item, "a string")),
            }
        }
        Ok(Some((self.at(name, v, ()), out)))
    }

    /// Every entry of a table whose values must all be strings (`labels`, `annotations`), in
    /// file order, with the span of each key; `what` names a value in the error ("a label value").
    pub fn string_entries(&self, what: &str) -> Res<Vec<(&'a str, Range<usize>, String)>> {
        let mut out = Vec::new();
        for (k, span, v) in self.entries() {
            match v.get_ref() {
                DeValue::String(s) => out.push((k, span, s.to_string())),
                other => {
                    let msg = format!("expected {what} (a string), found {}", kind(other));
                    return Err(self.err(&v.span(), k, msg));
                }
            }
        }
        Ok(out)
    }

    pub fn table(&self, name: &str) -> Res<Option<Table<'a, 'i>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Table(t) => Ok(Some(Table {
                src: self.src,
                table: t,
                span: v.span(),
                path: self.key(name),
            })),
            _ => Err(self.expected(name, v, "a table")),
        }
    }

    pub fn boolean(&self, name: &str) -> Res<Option<At<bool>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(self.at(name, v, *b))),
            _ => Err(self.expected(name, v, "true or false")),
        }
    }

    pub fn integer(&self, name: &str) -> Res<Option<At<i64>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Ok(Some(self.at(name, v, n))),
                Err(_) => Err(self.err(&v.span(), name, "integer out of range")),
            },
            _ => Err(self.expected(name, v, "an integer")),
        }
    }

    pub fn duration(&self, name: &str) -> Res<Option<At<Duration>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let DeValue::String(s) = v.get_ref() else {
            return Err(self.expected(name, v, "a duration string such as \"3s\""));
        };
        match parse_duration(s) {
            Ok(d) => Ok(Some(self.at(name, v, d))),
            Err(e) => Err(self.err(&v.span(), name, format!("invalid duration \"{s}\": {e}"))),
        }
    }

    /// A duration that must not be zero (a zero timeout would fail every attempt at once).
    pub fn positive_duration(&self, name: &str) -> Res<Option<At<Duration>>> {
        match self.duration(name)? {
            Some(d) if d.value.is_zero() => Err(ConfigError::new(
                self.src.file,
                d.line,
                d.key,
                format!("`{name}` must be greater than 0s"),
            )),
            other => Ok(other),
        }
    }

    pub fn address(&self, name: &str) -> Res<Option<At<Address>>> {
        match self.string(name)? {
            Some(s) => parse_address(self.src.file, s).map(Some),
            None => Ok(None),
        }
    }

    pub fn addresses(&self, name: &str) -> Res<Option<List<Address>>> {
        let Some((at, items)) = self.strings(name)? else {
            return Ok(None);
        };
        let addrs = items
            .into_iter()
            .map(|s| parse_address(self.src.file, s))
            .collect::<Res<Vec<_>>>()?;
        Ok(Some((at, addrs)))
    }
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn lines_of_offsets() {
        let src = Source::new("f", "a\nbc\n\nd");
        let lines: Vec<usize> = (0..=9).map(|o| src.line(o)).collect();
        // A newline belongs to the line it ends; offsets past the end are on the last line.
        assert_eq!(lines, [1, 1, 2, 2, 2, 3, 4, 4, 4, 4]);
        assert_eq!(Source::new("f", "").line(0), 1);
    }
}
