//! busway's man pages and shell completions, made from the same clap definitions as the binary's
//! command line, so that they cannot drift from `--help`.
//!
//! `cli.rs` is compiled in from the `busway` crate by path: it depends on clap alone, and this
//! keeps the generator from building the whole node.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "../../busway/src/cli.rs"]
mod cli;

mod man;

/// busway's command line, as `busway --help` knows it.
pub fn command() -> clap::Command {
    cli::Cli::command()
}

/// The completion scripts: file name (where Debian's shells look for it, minus the directory)
/// and shell.
pub const COMPLETIONS: [(&str, Shell); 3] = [
    ("busway.bash", Shell::Bash),
    ("_busway", Shell::Zsh),
    ("busway.fish", Shell::Fish),
];

/// `$CARGO_TARGET_DIR/release/assets`, or the workspace's `target/release/assets`: the
/// `target/release/` prefix is the one `cargo deb` maps to the real target directory.
pub fn default_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("release").join("assets")
}

/// The workspace's root: this crate is `crates/busway-xtask` in it.
fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).to_path_buf()
}

/// Writes `out/man/*.1` and `out/completions/*`; returns the files written.
pub fn write_assets(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir)?;
    for (name, page) in man::pages(command())? {
        let path = man_dir.join(name);
        std::fs::write(&path, page)?;
        written.push(path);
    }
    let comp_dir = out.join("completions");
    std::fs::create_dir_all(&comp_dir)?;
    for (name, shell) in COMPLETIONS {
        let path = comp_dir.join(name);
        std::fs::write(&path, completion(shell))?;
        written.push(path);
    }
    Ok(written)
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "busway", &mut out);
    out
}
