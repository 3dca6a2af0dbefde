//! What the Debian package ships: the example configuration is one `busway check` accepts, the
//! systemd units pass `systemd-analyze verify` and keep their hardening, and every file the
//! package metadata names exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use busway_test_support::proc::{busway_bin, run_to_end};
use busway_test_support::TempDir;

const UNITS: [&str; 3] = ["busway", "busway-controller", "busway-segment"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(workspace().join(format!("packaging/systemd/{name}.service"))).unwrap()
}

#[test]
fn the_example_configuration_passes_check() {
    let path = workspace().join("packaging/busway.toml");
    let (code, out, err) = run_to_end(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    // The unit's StateDirectory= is the file's state_dir.
    assert!(out.contains(r#"state_dir = "/var/lib/busway""#), "{out}");
    assert!(unit("busway").contains("\nStateDirectory=busway\n"));
    assert!(unit("busway")
        .contains("\nExecStart=/usr/bin/busway run --config /etc/busway/busway.toml\n"));
}

/// `systemd-analyze` ships with systemd, which the project's machines have (docs/OPERATIONS.md,
/// "Packaging"). `verify` runs each unit as systemd would load it, with the ExecStart binary
/// pointed at the one under test (the installed path does not exist here); `security` scores
/// the sandbox, and fails the test if the hardening loosens.
#[test]
fn the_units_pass_systemd_analyze() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the units were not verified");
        return;
    }
    let dir = TempDir::new("units");
    let bin = busway_bin();
    for name in UNITS {
        let text = unit(name).replace("/usr/bin/busway ", &format!("{} ", bin.display()));
        let path = dir.write(&format!("{name}.service"), &text);
        // --man=no: the man pages are checked against the generator in busway-xtask's tests.
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{name}: {said}"
        );
        let out = Command::new("systemd-analyze")
            // In tenths: 20 is an exposure of 2.0 (the units score 1.4).
            .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        let score = table.lines().last().unwrap_or_default();
        assert!(
            out.status.success(),
            "{name}: exposure above 2.0: {score}\n{table}"
        );
    }
}

#[test]
fn the_units_have_the_daemon_conventions() {
    for name in UNITS {
        let text = unit(name);
        for line in [
            "Type=notify",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartPreventExitStatus=2",
            "CapabilityBoundingSet=",
        ] {
            assert!(text.lines().any(|l| l == line), "{name}: no {line}");
        }
    }
    assert!(unit("busway-controller").contains(
        "\nExecStart=/usr/bin/busway controller -f /usr/local/etc/cloudbus/controller.ini\n"
    ));
    assert!(unit("busway-segment")
        .contains("\nExecStart=/usr/bin/busway segment -f /usr/local/etc/cloudbus/segment.ini\n"));
}

/// Files `cargo deb` would take from the source tree, and the units it installs.
#[test]
fn the_package_metadata_names_files_that_exist() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    for asset in deb["assets"].as_array().unwrap() {
        let src = asset[0].as_str().unwrap();
        if !src.starts_with("target/") {
            assert!(crate_dir.join(src).is_file(), "asset {src} does not exist");
        }
    }
    let scripts = crate_dir.join(deb["maintainer-scripts"].as_str().unwrap());
    let named: Vec<&str> = deb["systemd-units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["unit-name"].as_str().unwrap())
        .collect();
    assert_eq!(named, UNITS);
    for name in UNITS {
        assert!(scripts.join(format!("{name}.service")).is_file(), "{name}");
    }
    for conf in deb["conf-files"].as_array().unwrap() {
        let conf = conf.as_str().unwrap();
        let listed = deb["assets"].as_array().unwrap().iter().any(|a| {
            let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
            let file = Path::new(src).file_name().unwrap().to_str().unwrap();
            format!("/{dest}{file}") == conf || format!("/{dest}") == conf
        });
        assert!(listed, "conffile {conf} is not an asset");
    }
}
