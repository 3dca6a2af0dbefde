//! Hostile bytes into the envelope decoder and into both ends of a fresh connection.
//! The body and its invariants are in crates/busway-fuzz/src/decode.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| busway_fuzz::decode::run(data));
