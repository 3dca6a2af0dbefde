//! CONTRACT section 4: a Cloudbus controller and segment from their INI files.

mod common;

use common::*;

#[test]
fn controller_and_segment_from_ini_files_carry_sessions() {
    let backend = backends::echo();
    let dir = TempDir::new("ini");
    let seg = dir.write(
        "segment.ini",
        &format!(
            "[Cloudbus]\n\n; the echo service\n[Echo]\nbind=tcp://127.0.0.1:0\nserver={}\n",
            backend.url()
        ),
    );
    let segment = Proc::start(&["segment", "-f", seg.to_str().unwrap()]);
    let bus = segment.url("bus");
    let ctl = dir.write(
        "controller.ini",
        &format!("[cloudbus]\n[EchoFront]\nBIND=tcp://127.0.0.1:0\nserver={bus}  # the segment\n"),
    );
    let controller = Proc::start(&["controller", "-f", ctl.to_str().unwrap()]);
    let mut c = connect(&controller.addr("EchoFront"));
    roundtrip(&mut c, b"through cloudbus ini files");
    // The segment pins the session to its own section's service whatever the controller named it.
    assert_eq!(backend.accepted(), 1);

    // CONFIG_PATH is honoured when -f is absent.
    let env_ctl = busway_test_support::Proc::start_env(
        &["controller"],
        &[("CONFIG_PATH", ctl.to_str().unwrap())],
    );
    let mut c2 = connect(&env_ctl.addr("EchoFront"));
    roundtrip(&mut c2, b"via CONFIG_PATH");
}

#[test]
fn ini_errors_exit_2_with_file_line_and_key() {
    let dir = TempDir::new("inierr");
    let bad = dir.write(
        "c.ini",
        "[Cloudbus]\n[Svc]\nbind=tcp://127.0.0.1:0\nserver=tcp://127.0.0.1:1\ncolour=blue\n",
    );
    let (code, _, err) =
        busway_test_support::proc::run_to_end(&["controller", "-f", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("c.ini") && err.contains(":5") && err.contains("colour"),
        "{err}"
    );
}
