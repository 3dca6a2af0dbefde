//! Arbitrary text as an address: what parses prints canonically and parses back the same.
//! The body and its invariants are in crates/busway-fuzz/src/address.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| busway_fuzz::address::run(data));
