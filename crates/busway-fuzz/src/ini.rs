//! Arbitrary text as a Cloudbus INI file (`parse_ini`), for both roles.
//!
//! Invariants: an error names the file and a line of the text, on one line; a file that loads
//! renders to TOML that loads again as the same config (which is how `busway check` converts
//! INI files to TOML). Bytes that are not UTF-8 are replaced so every input reaches the parser.

use busway_config::{parse_ini, Role};

use crate::invariants::{error_points_into, renders_back};

const FILE: &str = "fuzz.ini";

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for role in [Role::Controller, Role::Segment] {
        match parse_ini(&text, FILE, role) {
            Ok(cfg) => renders_back(&cfg),
            Err(e) => error_points_into(&e, FILE, &text),
        }
    }
}
