//! What the integration tests of busway-config share: loading that must succeed, and one strict
//! check of an expected error (its file, line, key, message, and the one line it prints as).

#![allow(dead_code)]

use busway_config::*;

/// Parses TOML text that must load.
pub fn parse(text: &str) -> NodeConfig {
    parse_toml(text, "busway.toml").unwrap_or_else(|e| panic!("{e}"))
}

pub fn tcp(host: &str, port: u16) -> Address {
    Address::Tcp {
        host: host.into(),
        port,
    }
}

/// Asserts that TOML `text` fails at `line` and `key` with a message containing `needle`.
#[track_caller]
pub fn assert_err(text: &str, line: usize, key: &str, needle: &str) {
    check(
        parse_toml(text, "busway.toml"),
        "busway.toml",
        line,
        key,
        needle,
    );
}

/// The same for INI `text` read for `role`.
#[track_caller]
pub fn assert_ini_err(text: &str, role: Role, line: usize, key: &str, needle: &str) {
    let file = "cloudbus.ini";
    check(parse_ini(text, file, role), file, line, key, needle);
}

#[track_caller]
fn check(
    result: Result<NodeConfig, ConfigError>,
    file: &str,
    line: usize,
    key: &str,
    needle: &str,
) {
    let e = match result {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e,
    };
    assert_eq!(e.file, file, "{e}");
    assert_eq!((e.line, e.key.as_str()), (Some(line), key), "{e}");
    assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
    let shown = e.to_string();
    assert!(!shown.contains('\n'), "{shown}");
    let prefix = if key.is_empty() {
        format!("{file}:{line}: ")
    } else {
        format!("{file}:{line}: {key}: ")
    };
    assert!(shown.starts_with(&prefix), "{shown}");
}
