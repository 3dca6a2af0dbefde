//! Arbitrary text as a busway TOML file (`parse_toml`).
//!
//! Invariants: an error names the file and a line of the text, on one line; a file that loads
//! renders to TOML that loads again as the same config. Bytes that are not UTF-8 are replaced,
//! not skipped, so every input reaches the parser (a file that is not UTF-8 is refused when it
//! is read, before parsing).

use busway_config::parse_toml;

use crate::invariants::{error_points_into, renders_back};

const FILE: &str = "fuzz.toml";

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_toml(&text, FILE) {
        Ok(cfg) => renders_back(&cfg),
        Err(e) => error_points_into(&e, FILE, &text),
    }
}
