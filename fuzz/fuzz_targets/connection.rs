//! Two secret-configured connections driven by a script: stream API calls on both sides,
//! deliveries, the clock and hostile frames with valid checks, interleaved.
//! The body and its invariants are in crates/busway-fuzz/src/connection.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| busway_fuzz::connection::run(data));
