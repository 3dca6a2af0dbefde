//! Every fuzz target over its seed corpus (`fuzz/corpus/NAME/`) and then over deterministic
//! mutated and generated inputs, bounded in count and in time, on every test run. This is not a
//! replacement for cargo-fuzz (no coverage feedback), but it keeps the targets compiling and
//! their invariants true on stable Rust, and it replays every committed regression input.
//!
//! `BUSWAY_FUZZ_SMOKE_INPUTS` and `BUSWAY_FUZZ_SMOKE_SECS` raise the bounds for a longer run
//! (docs/FUZZING.md).

mod mutate;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busway_fuzz::{Target, TARGETS};
use mutate::{generate, mutate, seed_for, Rng};

/// Enough to reach past the seeds' first mutations: about half a second per target here.
const INPUTS: u64 = 20_000;
/// The bound that keeps `./scripts/test` short on a slow or loaded machine.
const SECS: u64 = 5;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seed files of a target, sorted by name so the mutation sequence is reproducible.
fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(name);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Runs one input; a panic is reported with the input, which is also saved for replay.
fn run_one(target: &Target, what: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(data))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke");
    let _ = std::fs::create_dir_all(&dir);
    let saved = dir.join(format!("{}-failure", target.name));
    let _ = std::fs::write(&saved, data);
    let shown: String = String::from_utf8_lossy(data).chars().take(2_000).collect();
    panic!(
        "target `{}` failed on {what}, saved as {}: {shown:?}",
        target.name,
        saved.display()
    );
}

fn smoke(target: &Target) -> u64 {
    let seeds = corpus(target.name);
    assert!(
        seeds.len() >= 3,
        "fuzz/corpus/{} needs seed files (valid inputs and edge cases)",
        target.name
    );
    for (path, data) in &seeds {
        run_one(target, &path.display().to_string(), data);
    }
    let data: Vec<Vec<u8>> = seeds.into_iter().map(|(_, d)| d).collect();
    let limit = env_or("BUSWAY_FUZZ_SMOKE_INPUTS", INPUTS);
    let deadline = Instant::now() + Duration::from_secs(env_or("BUSWAY_FUZZ_SMOKE_SECS", SECS));
    let seed = seed_for(target.name);
    let mut rng = Rng::new(seed);
    let mut n = 0;
    while n < limit && Instant::now() < deadline {
        let input = if n % 8 == 7 {
            generate(&mut rng)
        } else {
            mutate(&mut rng, &data)
        };
        run_one(target, &format!("input {n} of seed {seed:#x}"), &input);
        n += 1;
    }
    n
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    for target in TARGETS {
        let started = Instant::now();
        let n = smoke(target);
        eprintln!("{}: {n} inputs in {:?}", target.name, started.elapsed());
        assert!(n > 0, "{}: no mutated input ran", target.name);
    }
}

/// cargo-fuzz needs a bin per target that calls its body; a target added to the library but
/// not to `fuzz/` would never be fuzzed for real.
#[test]
fn every_target_has_a_cargo_fuzz_bin() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for t in TARGETS {
        let bin = format!(
            "[[bin]]\nname = \"{}\"\npath = \"fuzz_targets/{}.rs\"",
            t.name, t.name
        );
        assert!(manifest.contains(&bin), "fuzz/Cargo.toml lacks:\n{bin}");
        let src = fuzz_dir().join(format!("fuzz_targets/{}.rs", t.name));
        let src =
            std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let call = format!("busway_fuzz::{}::run(", t.name);
        assert!(
            src.contains(&call),
            "fuzz_targets/{}.rs does not call {call}",
            t.name
        );
    }
}
