//! CONTRACT section 1: exit codes, start-up lines, check, demo.

mod common;

use std::time::Duration;

use busway_test_support::proc::run_to_end;
use common::*;

#[test]
fn unknown_flags_and_commands_are_usage_errors() {
    let (code, _, err) = run_to_end(&["run", "--no-such-flag"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run_to_end(&["frobnicate"], &[]);
    assert_eq!(code, 2);
    let (code, out, _) = run_to_end(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("controller") && out.contains("segment") && out.contains("demo"));
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_key() {
    let dir = TempDir::new("badcfg");
    let path = dir.write(
        "bad.toml",
        "[node]\nname = \"x\"\n\n[[service]]\nname = \"chat\"\nlisten = [\"tcp://127.0.0.1:0\"]\nbackends = [\"tcp://127.0.0.1:1\"]\nconnect_timeout = \"3 parsecs\"\n",
    );
    let (code, out, err) = run_to_end(&["run", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "printed before failing: {out}");
    assert!(
        err.contains("bad.toml") && err.contains(":8") && err.contains("connect_timeout"),
        "{err}"
    );

    let path = dir.write("unknown.toml", "[node]\nname = \"x\"\ncolour = \"blue\"\n");
    let (code, _, err) = run_to_end(&["check", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown.toml") && err.contains(":3") && err.contains("colour"),
        "{err}"
    );

    let (code, _, err) = run_to_end(
        &["run", "-c", dir.path("missing.toml").to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn a_listener_that_cannot_be_bound_exits_1_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new("bind");
    let path = dir.write(
        "n.toml",
        &format!("[[service]]\nname = \"a\"\nlisten = [\"tcp://{addr}\"]\nbackends = [\"tcp://127.0.0.1:1\"]\n"),
    );
    let (code, out, err) = run_to_end(&["run", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(!out.contains("ready"));
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[test]
fn a_unix_path_that_is_not_a_socket_exits_1_and_is_left_untouched() {
    let dir = TempDir::new("notsock");
    let file = dir.write("precious.txt", "keep me");
    let path = dir.write(
        "n.toml",
        &format!(
            "[[service]]\nname = \"a\"\nlisten = [\"unix://{}\"]\nbackends = [\"tcp://127.0.0.1:1\"]\n",
            file.display()
        ),
    );
    let (code, _, err) = run_to_end(&["run", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("precious.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn check_prints_normalised_toml_with_defaults() {
    let dir = TempDir::new("check");
    let path = dir.write(
        "n.toml",
        "[node]\nannotations = { owner = \"team-chat\", \"ticket id\" = \"OPS-1\" }\nstate_dir = \"/var/lib/busway\"\n\n[[service]]\nname = \"chat\"\nlisten = [\"tcp://127.0.0.1:7000\"]\nbackends = [\"tcp://127.0.0.1:9000\"]\n",
    );
    let (code, out, err) = run_to_end(&["check", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    for line in [
        r#"annotations = { owner = "team-chat", "ticket id" = "OPS-1" }"#,
        r#"state_dir = "/var/lib/busway""#,
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
    assert!(out.contains("one-to-one"), "{out}");
    assert!(out.contains("round-robin"), "{out}");
    assert!(out.contains("tcp://127.0.0.1:9000"), "{out}");
    // The output is itself a valid configuration.
    let again = dir.write("again.toml", &out);
    let (code, out2, err) = run_to_end(&["check", "-c", again.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, out2);
}

#[test]
fn demo_echoes_through_ingress_bus_and_egress() {
    let demo = Proc::start(&["demo", "--listen", "tcp://127.0.0.1:0"]);
    let mut c = connect(&demo.addr("demo"));
    roundtrip(&mut c, b"hello busway\n");
    let admin = demo.addr("admin");
    let peers = http::get(&admin, "/v1/peers").body;
    assert!(peers.contains("demo-egress"), "{peers}");
    drop(c);
    let mut demo = demo;
    demo.signal(15);
    let st = demo
        .wait_exit(Duration::from_secs(5))
        .expect("demo exits on SIGTERM");
    assert!(st.success());
}

#[test]
fn status_prints_services_peers_and_sessions_from_the_admin_api() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let mut c = chain.client();
    roundtrip(&mut c, b"x");
    let admin = chain.ingress.url("admin");
    let (code, out, err) = run_to_end(&["status", "--admin", &admin], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVICES") && out.contains("chat"), "{out}");
    assert!(out.contains("egress"), "{out}");
    assert!(out.contains("one-to-one"), "{out}");
    let (code, _, err) = run_to_end(&["status", "--admin", "http://127.0.0.1:1"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach"), "{err}");
}
