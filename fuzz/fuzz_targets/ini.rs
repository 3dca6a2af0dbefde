//! Arbitrary text as a Cloudbus INI file, both roles: errors point into it, what loads renders back.
//! The body and its invariants are in crates/busway-fuzz/src/ini.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| busway_fuzz::ini::run(data));
