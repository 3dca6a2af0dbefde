//! The generated man pages and completions cover the whole command line, and the packaging takes
//! what the generator writes: a subcommand or an option without help text, missing from
//! docs/OPERATIONS.md, or a renamed asset fails here rather than in a package nobody built.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Out(PathBuf);

impl Drop for Out {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn generate(tag: &str) -> Out {
    let dir = std::env::temp_dir().join(format!("busway-xtask-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    busway_xtask::write_assets(&dir).unwrap();
    Out(dir)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// How roff spells text: a hyphen is `\-`, an apostrophe `\*(Aq`.
fn roff(s: &str) -> String {
    s.replace('-', "\\-").replace('\'', "\\*(Aq")
}

#[test]
fn every_subcommand_and_option_is_documented_everywhere() {
    let out = generate("docs");
    let cmd = busway_xtask::command();
    let root = read(&out.0, "man/busway.1");
    let bash = read(&out.0, "completions/busway.bash");
    let zsh = read(&out.0, "completions/_busway");
    let fish = read(&out.0, "completions/busway.fish");
    let operations = std::fs::read_to_string(workspace().join("docs/OPERATIONS.md")).unwrap();
    for section in ["EXIT STATUS", "SIGNALS", "ENVIRONMENT", "FILES", "SEE ALSO"] {
        assert!(
            root.contains(&format!(".SH \"{section}\""))
                || root.contains(&format!(".SH {section}")),
            "{section}"
        );
    }
    for arg in cmd.get_arguments() {
        let long = arg.get_long().unwrap();
        assert!(arg.get_help().is_some(), "--{long} has no help text");
        assert!(
            root.contains(&roff(&format!("--{long}"))),
            "busway.1 lacks --{long}"
        );
    }
    let subs: Vec<_> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    assert!(subs.len() >= 7, "{}", subs.len());
    for sub in subs {
        let name = sub.get_name();
        let about = sub
            .get_about()
            .unwrap_or_else(|| panic!("`busway {name}` has no help text"))
            .to_string();
        let page = read(&out.0, &format!("man/busway-{name}.1"));
        assert!(
            root.contains(&roff(&format!("busway-{name}"))),
            "busway.1 lacks {name}"
        );
        assert!(
            page.contains(&roff(&about)),
            "busway-{name}.1 lacks {about:?}"
        );
        assert!(
            page.contains(&roff(&format!("busway {name}"))),
            "busway-{name}.1 synopsis"
        );
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            assert!(
                arg.get_help().is_some(),
                "`busway {name}`: {id} has no help text"
            );
            if let Some(long) = arg.get_long() {
                let flag = format!("--{long}");
                assert!(page.contains(&roff(&flag)), "busway-{name}.1 lacks {flag}");
                assert!(bash.contains(&flag), "bash completion lacks {name} {flag}");
                assert!(zsh.contains(&flag), "zsh completion lacks {name} {flag}");
                assert!(
                    fish.contains(&format!("-l {long}")),
                    "fish completion lacks {name} {flag}"
                );
            }
        }
        assert!(bash.contains(name), "bash completion lacks {name}");
        assert!(
            zsh.contains(&format!("'{name}:")),
            "zsh completion lacks {name}"
        );
        assert!(
            fish.contains(&format!("-a \"{name}\"")),
            "fish completion lacks {name}"
        );
        assert!(
            operations.contains(&format!("| `busway {name}")),
            "docs/OPERATIONS.md has no row for `busway {name}`"
        );
    }
}

/// Every `man:` page a unit names is one the generator writes.
#[test]
fn the_units_documentation_pages_exist() {
    let out = generate("units");
    for unit in ["busway", "busway-controller", "busway-segment"] {
        let text =
            std::fs::read_to_string(workspace().join(format!("packaging/systemd/{unit}.service")))
                .unwrap();
        let docs = text
            .lines()
            .find_map(|l| l.strip_prefix("Documentation="))
            .unwrap_or_else(|| panic!("{unit}: no Documentation="));
        for page in docs
            .split_whitespace()
            .filter_map(|d| d.strip_prefix("man:"))
        {
            let file = page.replace("(1)", ".1");
            assert!(out.0.join("man").join(&file).is_file(), "{unit}: {page}");
        }
    }
}

/// `cargo deb` packages each generated file from `target/release/assets/`, the default output.
#[test]
fn the_deb_assets_are_the_generated_files() {
    let out = generate("deb");
    let manifest = std::fs::read_to_string(workspace().join("crates/busway/Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let sources: Vec<&str> = assets
        .iter()
        .filter_map(|a| a.as_array()?.first()?.as_str())
        .collect();
    assert!(busway_xtask::default_dir().ends_with("target/release/assets"));
    for file in walk(&out.0) {
        let rel = file
            .strip_prefix(&out.0)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let packaged = sources.iter().any(|s| {
            s.strip_prefix("target/release/assets/")
                .is_some_and(|pattern| glob(pattern, &rel))
        });
        assert!(
            packaged,
            "{rel} is generated but not in [package.metadata.deb] assets"
        );
    }
}

/// `pattern` with at most one `*`, which stands for any characters but `/`.
fn glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => {
            path.len() >= head.len() + tail.len()
                && path.starts_with(head)
                && path.ends_with(tail)
                && !path[head.len()..path.len() - tail.len()].contains('/')
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}
