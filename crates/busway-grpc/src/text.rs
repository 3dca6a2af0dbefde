//! Text an upstream supplies (status messages, transport errors, uuids it sends back) or that
//! came through the admin API (addresses), cut short before it is logged or shown: a peer must
//! not be able to fill the logs or the admin API's answers with kilobytes per line.

use std::borrow::Cow;

/// The most characters of peer-supplied text a log line or an error string keeps.
pub const LOG_TEXT: usize = 128;

/// `s` cut to at most [`LOG_TEXT`] characters (at a character boundary), with `…` when cut.
pub fn cap(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(LOG_TEXT) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}…", &s[..end])),
    }
}

/// [`cap`] for a string already owned, without copying one that is short enough.
pub fn cap_owned(s: String) -> String {
    match cap(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(c) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        let s = "a".repeat(LOG_TEXT);
        assert!(matches!(cap(&s), Cow::Borrowed(_)));
        assert_eq!(cap_owned(s.clone()), s);
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        // Two-byte characters: a byte-based cut would split one.
        let s = "é".repeat(10 * LOG_TEXT);
        let c = cap(&s).into_owned();
        assert_eq!(c.chars().count(), LOG_TEXT + 1);
        assert!(c.ends_with('…'));
        assert!(c.starts_with(&"é".repeat(LOG_TEXT)));
        assert_eq!(cap_owned(s), c);
    }
}
