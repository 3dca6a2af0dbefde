//! One multi-link session driven by a script: writes, pieces and acknowledgements over up to
//! four links in any order, links lost and added, and hostile pieces and acknowledgements.
//! The body and its invariants are in crates/busway-fuzz/src/multilink.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| busway_fuzz::multilink::run(data));
