//! The bodies of busway's fuzz targets, one module per target, each `pub fn run(data: &[u8])`.
//!
//! They live in a normal workspace crate, not in `fuzz/`, so that two drivers share them:
//! cargo-fuzz (`fuzz/fuzz_targets/NAME.rs` is one line calling `NAME::run`) and the smoke test
//! (`tests/smoke.rs`), which runs every entry of [`TARGETS`] over its seed corpus in
//! `fuzz/corpus/NAME/` and a bounded number of mutations on every `./scripts/test`. The smoke test
//! keeps the bodies compiling and their invariants true on stable Rust, where libFuzzer may not
//! run.
//!
//! A body asserts invariants that a bug could break, never only "did not panic": see each
//! module. A panic is the finding; the smoke test prints the input that caused it.
//!
//! Adding a target: a module here, a line in [`TARGETS`], a seed directory under `fuzz/corpus/`,
//! and a `[[bin]]` in `fuzz/Cargo.toml`.

pub mod address;
pub mod connection;
pub mod decode;
pub mod ini;
mod invariants;
pub mod multilink;
mod script;
pub mod toml;

/// One fuzz target: its name (the cargo-fuzz bin and the corpus directory) and its body.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, for drivers that run them all.
pub const TARGETS: &[Target] = &[
    Target {
        name: "toml",
        run: toml::run,
    },
    Target {
        name: "ini",
        run: ini::run,
    },
    Target {
        name: "address",
        run: address::run,
    },
    Target {
        name: "decode",
        run: decode::run,
    },
    Target {
        name: "connection",
        run: connection::run,
    },
    Target {
        name: "multilink",
        run: multilink::run,
    },
];
