//! Arbitrary text as a busway TOML file: errors point into it, what loads renders back.
//! The body and its invariants are in crates/busway-fuzz/src/toml.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| busway_fuzz::toml::run(data));
