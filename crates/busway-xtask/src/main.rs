//! `cargo run -p busway-xtask -- assets [DIR]`: writes busway's man pages (DIR/man/*.1) and
//! shell completions (DIR/completions/) for packaging. DIR defaults to
//! `target/release/assets`, where `cargo deb` takes them from (crates/busway/Cargo.toml).
//!
//! A separate program rather than a `busway` subcommand, so that the binary's command line stays
//! the contract's, and rather than a build script, so that packagers get files they can see.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [task] if task == "assets" => busway_xtask::default_dir(),
        [task, dir] if task == "assets" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: busway-xtask assets [DIR]   (default DIR: target/release/assets)");
            return ExitCode::from(2);
        }
    };
    match busway_xtask::write_assets(&out) {
        Ok(files) => {
            // A closed stdout (`| head`) is no failure: the files are written.
            let mut out = std::io::stdout().lock();
            for f in files {
                let _ = writeln!(out, "{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("busway-xtask: {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}
